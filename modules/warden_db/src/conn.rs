//! Connecting to PostgreSQL, with libpq's `sslmode` meanings (libpq-ssl.html), on top of
//! `tokio-postgres` (0.7.18) driven by a one-thread runtime. The driver's own `SslMode` has
//! only disable/prefer/require and its TLS connectors always verify, so the modes are built
//! here:
//! * `disable`: no TLS; `allow`: no TLS, then TLS if that failed; `prefer`: TLS, and without
//!   it only if the server answers the SSLRequest with `N`; `require`: TLS, certificate not
//!   checked;
//! * `verify-ca`: TLS with the certificate checked against `ca_cert` (not the host name);
//!   `verify-full` (the default): also the host name (an IP address needs an IP SAN).
//!
//! A unix socket never uses TLS (PostgreSQL does not offer it there; libpq skips it too).
//!
//! What the server may ask for is the caller's [`Policy`], enforced by [`guard`] below the
//! driver: by default only SCRAM-SHA-256 (and, over a unix socket, peer/trust logins), never a
//! cleartext password or an MD5 hash, and no more SCRAM iterations than
//! [`crate::scram::MAX_ITERATIONS`]. Over TLS the SCRAM login must be channel-bound
//! (SCRAM-SHA-256-PLUS with tls-server-end-point, RFC 5929): the driver's
//! `ChannelBinding::Require`, which also refuses every other method, unless the policy allows
//! one; then the guard still insists the server offers SCRAM-SHA-256-PLUS.
//!
//! Every wait is bounded: the whole login (TCP or socket connect, TLS, authentication) by
//! `connect_timeout`; each statement by the server's `statement_timeout` and `lock_timeout`
//! (sent in the startup packet) and, should the server not enforce them, by a client-side
//! deadline [`GRACE`] later.
//!
//! Errors name what was tried (host, port, user, database, sslmode) and the whole cause chain
//! with SQLSTATE, detail and hint, never the password.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use tokio_postgres::config::{ChannelBinding, SslMode as PgSslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::checks::SslMode;
pub use crate::guard::Policy;
use crate::guard::{Guard, Seen};

/// How much longer than the server's own timeouts the client waits for an answer.
pub const GRACE: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub unix_socket: Option<String>,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub ssl_mode: SslMode,
    pub ca_cert: Option<String>,
    /// The authentication methods accepted (`require_plus` is set here for TLS).
    pub auth: Policy,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
}

impl Target {
    /// `host:port` or the socket, for messages.
    pub fn describe(&self) -> String {
        match &self.unix_socket {
            Some(dir) => format!(
                "PostgreSQL at socket {dir}/.s.PGSQL.{} as {} (database {}, no TLS on a unix socket)",
                self.port, self.user, self.dbname
            ),
            None => format!(
                "PostgreSQL at {}:{} as {} (database {}, sslmode {})",
                self.host, self.port, self.user, self.dbname, self.ssl_mode
            ),
        }
    }

    fn config(&self, tls: bool) -> Config {
        let mut config = Config::new();
        config
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("warden_db")
            .options(format!(
                "-c statement_timeout={} -c lock_timeout={}",
                self.statement_timeout.as_millis(),
                self.lock_timeout.as_millis()
            ));
        if let Some(password) = &self.password {
            config.password(password);
        }
        let only_scram = !(self.auth.md5 || self.auth.password || self.auth.none);
        if tls {
            config
                .ssl_mode(PgSslMode::Require)
                .channel_binding(if only_scram {
                    ChannelBinding::Require
                } else {
                    ChannelBinding::Prefer
                });
        } else {
            config
                .ssl_mode(PgSslMode::Disable)
                .channel_binding(ChannelBinding::Disable);
        }
        config
    }
}

/// A connection: the driver's client, the runtime that moves its bytes, and the deadline of
/// each call.
pub struct Db {
    client: Client,
    runtime: Runtime,
    deadline: Duration,
    statement_timeout: Duration,
    lock_timeout: Duration,
}

/// A failed statement: its SQLSTATE (if the server sent one) and the whole explanation.
#[derive(Debug)]
pub struct DbError {
    code: Option<SqlState>,
    text: String,
}

impl DbError {
    pub fn code(&self) -> Option<&SqlState> {
        self.code.as_ref()
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl StdError for DbError {}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Db {
    fn run<T>(
        &self,
        call: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        let deadline = self.deadline;
        // The timer is made inside the runtime (it needs its clock).
        match self
            .runtime
            .block_on(async move { tokio::time::timeout(deadline, call).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(DbError {
                code: None,
                text: format!(
                    "no answer from the server within {} s (statement_timeout {} s, lock_timeout {} s, plus {} s); the connection was given up",
                    self.deadline.as_secs(),
                    self.statement_timeout.as_secs(),
                    self.lock_timeout.as_secs(),
                    GRACE.as_secs()
                ),
            }),
        }
    }

    fn error(&self, e: tokio_postgres::Error) -> DbError {
        let code = e.code().cloned();
        let mut text = explain(&e.into());
        if code == Some(SqlState::LOCK_NOT_AVAILABLE) && text.contains("lock timeout") {
            text.push_str(&format!(
                "; lock_timeout ({} s) ran out waiting for a lock another session holds",
                self.lock_timeout.as_secs()
            ));
        } else if code == Some(SqlState::QUERY_CANCELED) && text.contains("statement timeout") {
            text.push_str(&format!(
                "; statement_timeout ({} s) ran out",
                self.statement_timeout.as_secs()
            ));
        }
        DbError { code, text }
    }

    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, DbError> {
        self.run(self.client.execute(sql, params))
    }
    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, DbError> {
        self.run(self.client.query(sql, params))
    }
    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, DbError> {
        self.run(self.client.query_one(sql, params))
    }
    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, DbError> {
        self.run(self.client.query_opt(sql, params))
    }
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.run(self.client.batch_execute(sql))
    }
}

/// Opens a connection as `target` says.
pub fn connect(target: &Target) -> Result<Db> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let attempt = |verify: Option<Verify>| runtime.block_on(attempt(target, verify));
    let result = if target.unix_socket.is_some() {
        attempt(None)
    } else {
        match target.ssl_mode {
            SslMode::Disable => attempt(None),
            SslMode::Allow => attempt(None).or_else(|plain| {
                attempt(Some(Verify::Nothing)).map_err(|tls| Failure {
                    error: anyhow!(
                        "without TLS: {}; with TLS: {}",
                        explain(&plain.error),
                        explain(&tls.error)
                    ),
                    tls_refused: tls.tls_refused,
                })
            }),
            SslMode::Prefer => match attempt(Some(Verify::Nothing)) {
                Err(failure) if failure.tls_refused => attempt(None),
                other => other,
            },
            SslMode::Require => attempt(Some(Verify::Nothing)),
            SslMode::VerifyCa => attempt(Some(Verify::Chain)),
            SslMode::VerifyFull => attempt(Some(Verify::Full)),
        }
    };
    let client = result.map_err(|failure| {
        anyhow!(
            "cannot connect to {}: {}",
            target.describe(),
            explain(&failure.error)
        )
    })?;
    Ok(Db {
        client,
        runtime,
        deadline: target.statement_timeout.max(target.lock_timeout) + GRACE,
        statement_timeout: target.statement_timeout,
        lock_timeout: target.lock_timeout,
    })
}

struct Failure {
    error: anyhow::Error,
    tls_refused: bool,
}

/// One login: socket, TLS if `verify` says so, authentication, all within connect_timeout.
async fn attempt(target: &Target, verify: Option<Verify>) -> Result<Client, Failure> {
    let seen = Arc::new(Seen::default());
    let login = async {
        let socket = open(target).await?;
        let raw = Guard::new(socket, target.auth, verify.is_some(), seen.clone());
        let tls_policy = Policy {
            require_plus: true,
            ..target.auth
        };
        let mut make = MakeRustlsConnect::new(tls_config(
            verify.unwrap_or(Verify::Nothing),
            target.ca_cert.as_deref(),
        )?);
        let tls = GuardedTls {
            inner: <MakeRustlsConnect as MakeTlsConnect<Guard<Socket>>>::make_tls_connect(
                &mut make,
                &target.host,
            )?,
            policy: tls_policy,
            seen: seen.clone(),
        };
        let (client, connection) = target
            .config(verify.is_some())
            .connect_raw(raw, tls)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok::<Client, anyhow::Error>(client)
    };
    let result = match tokio::time::timeout(target.connect_timeout, login).await {
        Ok(result) => result,
        Err(_) => Err(anyhow!(
            "no complete login within connect_timeout ({} s)",
            target.connect_timeout.as_secs()
        )),
    };
    result.map_err(|error| Failure {
        error,
        tls_refused: seen.tls_refused(),
    })
}

/// The byte stream under the driver: a TCP connection or a unix socket.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Socket = Box<dyn Io>;

async fn open(target: &Target) -> Result<Socket> {
    if let Some(dir) = &target.unix_socket {
        let path = format!("{dir}/.s.PGSQL.{}", target.port);
        let socket = tokio::net::UnixStream::connect(&path)
            .await
            .with_context(|| format!("cannot connect to {path}"))?;
        return Ok(Box::new(socket));
    }
    let addresses = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .with_context(|| format!("cannot resolve {}", target.host))?;
    let mut last = None;
    for address in addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(socket) => {
                let _ = socket.set_nodelay(true);
                return Ok(Box::new(socket));
            }
            Err(e) => last = Some(anyhow::Error::from(e).context(format!("{address}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{} has no address", target.host)))
}

/// rustls under the driver, with a [`Guard`] on the decrypted stream.
struct GuardedTls<T> {
    inner: T,
    policy: Policy,
    seen: Arc<Seen>,
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl<S, T> TlsConnect<S> for GuardedTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: Send + 'static,
{
    type Stream = Guard<T::Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, BoxError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let handshake = self.inner.connect(stream);
        let (policy, seen) = (self.policy, self.seen);
        Box::pin(async move {
            let stream = handshake.await.map_err(Into::into)?;
            Ok(Guard::new(stream, policy, false, seen))
        })
    }
}

impl<S: TlsStream + Unpin> TlsStream for Guard<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        self.get_ref().channel_binding()
    }
}

/// An error's whole story: PostgreSQL's own fields when it is a server error, else every
/// cause in the chain (the driver's `Display` alone says only "db error" or "error
/// connecting to server").
pub fn explain(error: &anyhow::Error) -> String {
    if let Some(db) = error
        .chain()
        .find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
        .and_then(|e| e.as_db_error())
    {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let mut source: Option<&(dyn StdError + 'static)> = Some(cause);
        while let Some(e) = source {
            let text = e.to_string();
            if !parts.contains(&text) {
                parts.push(text);
            }
            source = e.source();
        }
    }
    let mut text = parts.join(": ");
    if text.contains("server did not use channel binding") {
        text.push_str(" (over TLS warden_db requires SCRAM-SHA-256-PLUS: scram-sha-256 for this user in pg_hba.conf, PostgreSQL 11 or later, a certificate signed with RSA or ECDSA and SHA-2)");
    }
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    Full,
}

fn tls_config(verify: Verify, ca_cert: Option<&str>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    if verify == Verify::Nothing {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth());
    }
    let path = ca_cert.ok_or_else(|| {
        anyhow!("ssl_mode verify-ca and verify-full need ca_cert, the CA that signed the server's certificate")
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read ca_cert {path}"))?
    {
        roots
            .add(cert.with_context(|| format!("bad certificate in {path}"))?)
            .with_context(|| format!("bad CA certificate in {path}"))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .context("TLS setup")?;
    let verifier: Arc<dyn ServerCertVerifier> = if verify == Verify::Full {
        webpki
    } else {
        Arc::new(ChainOnly(webpki))
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// libpq's `prefer`/`require`: encrypted, certificate not checked.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain must lead to `ca_cert`; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
