//! Connecting to PostgreSQL with libpq's `sslmode` meanings (libpq-ssl.html) on top of the
//! `postgres` crate, whose own `SslMode` has only disable/prefer/require and whose TLS
//! connectors always verify the certificate and host name:
//! * `disable`: no TLS; `allow`: no TLS, then TLS if the server refused the plain connection;
//! * `prefer`: TLS if the server offers it, without verifying the certificate; `require`:
//!   TLS, not verified;
//! * `verify-ca`: TLS with the certificate checked against `ca_cert` (not the host name);
//!   `verify-full`: also the host name.
//!
//! Errors name what was tried (host, port, user, database, sslmode) and the whole cause chain
//! with SQLSTATE, detail and hint, never the password.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub unix_socket: Option<String>,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub ssl_mode: String,
    pub ca_cert: Option<String>,
    pub connect_timeout: Duration,
}

impl Target {
    /// `host:port` or the socket directory, for messages.
    pub fn describe(&self) -> String {
        let place = match &self.unix_socket {
            Some(dir) => format!("socket {dir}/.s.PGSQL.{}", self.port),
            None => format!("{}:{}", self.host, self.port),
        };
        format!(
            "PostgreSQL at {place} as {} (database {}, sslmode {})",
            self.user, self.dbname, self.ssl_mode
        )
    }

    fn config(&self) -> Config {
        let mut config = Config::new();
        match &self.unix_socket {
            Some(dir) => config.host_path(dir),
            None => config.host(&self.host),
        };
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("warden_db")
            .connect_timeout(self.connect_timeout);
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }
}

/// Opens a connection as `target` says.
pub fn connect(target: &Target) -> Result<Client> {
    let plain = || {
        let mut config = target.config();
        config.ssl_mode(SslMode::Disable);
        config.connect(NoTls)
    };
    let tls = |mode: SslMode, verify: Verify| -> Result<Client> {
        let connector = MakeRustlsConnect::new(tls_config(verify, target.ca_cert.as_deref())?);
        let mut config = target.config();
        config.ssl_mode(mode);
        config.connect(connector).map_err(anyhow::Error::from)
    };
    let result = match target.ssl_mode.as_str() {
        "disable" => plain().map_err(anyhow::Error::from),
        "allow" => plain().or_else(|_| tls(SslMode::Require, Verify::Nothing)),
        "prefer" => tls(SslMode::Prefer, Verify::Nothing),
        "require" => tls(SslMode::Require, Verify::Nothing),
        "verify-ca" => tls(SslMode::Require, Verify::Chain),
        "verify-full" => tls(SslMode::Require, Verify::Full),
        other => bail!("ssl_mode {other:?} is not a libpq sslmode"),
    };
    result.map_err(|e| anyhow!("cannot connect to {}: {}", target.describe(), explain(&e)))
}

/// An error's whole story: PostgreSQL's own fields when it is a server error, else every
/// cause in the chain (the crate's `Display` alone says only "db error" or "error
/// connecting to server").
pub fn explain(error: &anyhow::Error) -> String {
    if let Some(db) = error
        .chain()
        .find_map(|e| e.downcast_ref::<postgres::Error>())
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
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(cause);
        while let Some(e) = source {
            let text = e.to_string();
            if !parts.contains(&text) {
                parts.push(text);
            }
            source = e.source();
        }
    }
    parts.join(": ")
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
    let path = ca_cert.ok_or_else(|| anyhow!("ssl_mode verify-ca and verify-full need ca_cert, the CA that signed the server's certificate"))?;
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
