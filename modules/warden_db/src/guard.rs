//! A watch on what the server sends while the client logs in, below the driver.
//!
//! `tokio-postgres` 0.7.18 answers whatever the server asks for: `connect_raw.rs` sends the
//! password for AuthenticationCleartextPassword, an MD5 hash for AuthenticationMD5Password,
//! accepts AuthenticationOk without any exchange, and runs PBKDF2 for as many SCRAM
//! iterations as the server's first SCRAM message names. It has no setting like libpq's
//! `require_auth` (libpq-connect.html, PostgreSQL 16+). So the byte stream the driver reads
//! passes through [`Guard`]: it parses the backend messages of the startup phase (protocol
//! 3.0, protocol-message-formats.html: a type byte, a big-endian length that counts itself,
//! the body) and turns an authentication request the caller did not allow into an I/O error
//! *before* the driver has the whole message, so the driver never answers it. Once the
//! server says AuthenticationOk the guard steps aside.
//!
//! Over TLS there are two guards: one on the socket, which sees the one-byte answer to the
//! SSLRequest (`S`: TLS follows, the guard steps aside; anything else: the server refused
//! TLS, which [`Seen`] records) and one on the TLS stream, which sees the plaintext protocol.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Authentication request codes (protocol-message-formats.html, `AuthenticationXXX`).
const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT: i32 = 3;
const AUTH_MD5: i32 = 5;
const AUTH_SASL: i32 = 10;
const AUTH_SASL_CONTINUE: i32 = 11;

/// Longest authentication message accepted: a SASL mechanism list or server-first-message
/// is well under 1 KiB.
const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// Which authentication methods the caller accepts from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// SCRAM-SHA-256 (AuthenticationSASL).
    pub scram: bool,
    /// AuthenticationMD5Password.
    pub md5: bool,
    /// AuthenticationCleartextPassword.
    pub password: bool,
    /// AuthenticationOk without any exchange (trust, peer).
    pub none: bool,
    /// The server's SASL mechanisms must include SCRAM-SHA-256-PLUS (channel binding).
    pub require_plus: bool,
    /// Most PBKDF2 iterations the server may ask for in its server-first-message.
    pub max_iterations: u32,
}

/// What the guards of one connection attempt saw.
#[derive(Debug, Default)]
pub struct Seen {
    tls_refused: AtomicBool,
}

impl Seen {
    /// The server answered the SSLRequest with something else than `S`.
    pub fn tls_refused(&self) -> bool {
        self.tls_refused.load(Ordering::Relaxed)
    }
}

/// An I/O stream whose incoming bytes are checked during login.
pub struct Guard<S> {
    inner: S,
    watch: Option<Watch>,
}

impl<S> Guard<S> {
    /// A guard that checks from the first byte; `ssl_reply`: the first byte is the answer to
    /// an SSLRequest.
    pub fn new(inner: S, policy: Policy, ssl_reply: bool, seen: Arc<Seen>) -> Guard<S> {
        Guard {
            inner,
            watch: Some(Watch {
                policy,
                ssl_reply,
                seen,
                header: Vec::with_capacity(5),
                kind: 0,
                remaining: 0,
                body: Vec::new(),
                authenticating: false,
            }),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The parser's state.
struct Watch {
    policy: Policy,
    ssl_reply: bool,
    seen: Arc<Seen>,
    header: Vec<u8>,
    kind: u8,
    remaining: usize,
    body: Vec<u8>,
    /// A password or SASL request came: a later AuthenticationOk ends an exchange.
    authenticating: bool,
}

enum Next {
    Watch,
    StepAside,
}

impl Watch {
    /// Checks the next bytes from the server; `Err` is the reason to refuse.
    fn feed(&mut self, mut data: &[u8]) -> Result<Next, String> {
        if self.ssl_reply {
            let Some((&first, rest)) = data.split_first() else {
                return Ok(Next::Watch);
            };
            self.ssl_reply = false;
            if first == b'S' {
                return Ok(Next::StepAside);
            }
            self.seen.tls_refused.store(true, Ordering::Relaxed);
            data = rest;
        }
        while !data.is_empty() {
            if self.header.len() < 5 {
                let take = (5 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.header.len() < 5 {
                    break;
                }
                self.kind = self.header[0];
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                if length < 4 {
                    return Err(format!(
                        "the server sent a malformed message (type {:?}, length {length})",
                        self.kind as char
                    ));
                }
                self.remaining = length - 4;
                self.body.clear();
                if self.kind == b'R' && self.remaining > MAX_AUTH_MESSAGE {
                    return Err(format!(
                        "the server sent an authentication request of {} bytes (at most {MAX_AUTH_MESSAGE} are accepted)",
                        self.remaining
                    ));
                }
            }
            let take = self.remaining.min(data.len());
            if self.kind == b'R' {
                self.body.extend_from_slice(&data[..take]);
            }
            data = &data[take..];
            self.remaining -= take;
            if self.remaining == 0 {
                self.header.clear();
                if self.kind == b'R' {
                    if let Next::StepAside = self.authentication()? {
                        return Ok(Next::StepAside);
                    }
                }
            }
        }
        Ok(Next::Watch)
    }

    /// One complete authentication message.
    fn authentication(&mut self) -> Result<Next, String> {
        let Some(code) = self
            .body
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Err("the server sent a malformed authentication request".into());
        };
        let p = self.policy;
        match code {
            AUTH_OK => {
                if !self.authenticating && !p.none {
                    return Err("the server let the login in without authenticating it (trust or peer), which require_auth does not allow (add none)".into());
                }
                return Ok(Next::StepAside);
            }
            AUTH_CLEARTEXT if !p.password => {
                return Err("the server asked for the password in clear text (AuthenticationCleartextPassword); it was not sent: require_auth does not allow password".into());
            }
            AUTH_MD5 if !p.md5 => {
                return Err("the server asked for an MD5 password hash (AuthenticationMD5Password); nothing was sent: require_auth does not allow md5".into());
            }
            AUTH_SASL => {
                if !p.scram {
                    return Err("the server asked for SCRAM-SHA-256, which require_auth does not allow (add scram-sha-256)".into());
                }
                let mechanisms: Vec<String> = self.body[4..]
                    .split(|b| *b == 0)
                    .filter(|m| !m.is_empty())
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                if p.require_plus && !mechanisms.iter().any(|m| m == "SCRAM-SHA-256-PLUS") {
                    return Err(format!(
                        "the server offers {} but not SCRAM-SHA-256-PLUS: channel binding is required over TLS",
                        mechanisms.join(", ")
                    ));
                }
            }
            AUTH_SASL_CONTINUE => {
                // server-first-message: r=<nonce>,s=<salt>,i=<iterations> (RFC 5802 section 7).
                let text = String::from_utf8_lossy(&self.body[4..]);
                if let Some(count) = text
                    .split(',')
                    .find_map(|attr| attr.strip_prefix("i="))
                    .and_then(|i| i.trim().parse::<u64>().ok())
                {
                    if count > u64::from(p.max_iterations) {
                        return Err(format!(
                            "the server asked for {count} SCRAM iterations, more than the {} warden_db accepts; nothing was computed or sent",
                            p.max_iterations
                        ));
                    }
                }
            }
            _ => {}
        }
        self.authenticating = true;
        Ok(Next::Watch)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(watch)) = (&result, this.watch.as_mut()) {
            match watch.feed(&buf.filled()[before..]) {
                Ok(Next::Watch) => {}
                Ok(Next::StepAside) => this.watch = None,
                Err(reason) => {
                    // The driver never sees the message it would have answered.
                    buf.set_filled(before);
                    this.watch = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        reason,
                    )));
                }
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Policy = Policy {
        scram: true,
        md5: false,
        password: false,
        none: false,
        require_plus: false,
        max_iterations: 100_000,
    };

    fn watch(policy: Policy, ssl_reply: bool) -> Watch {
        match Guard::new((), policy, ssl_reply, Arc::default()).watch {
            Some(w) => w,
            None => unreachable!(),
        }
    }

    fn auth(code: i32, rest: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&((8 + rest.len()) as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(rest);
        m
    }

    /// Feeds `data` one byte at a time (the worst split a socket can give).
    fn bytewise(w: &mut Watch, data: &[u8]) -> Result<bool, String> {
        for b in data {
            if let Next::StepAside = w.feed(std::slice::from_ref(b))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    #[test]
    fn cleartext_and_md5_requests_are_refused_however_they_are_split() {
        let mut w = watch(STRICT, true);
        let mut data = vec![b'N'];
        data.extend(auth(AUTH_CLEARTEXT, b""));
        let e = bytewise(&mut w, &data).unwrap_err();
        assert!(e.contains("clear text"), "{e}");
        assert!(w.seen.tls_refused());

        let mut w = watch(STRICT, false);
        let e = w.feed(&auth(AUTH_MD5, b"salt")).err().unwrap();
        assert!(e.contains("MD5"), "{e}");

        let allowed = Policy {
            password: true,
            md5: true,
            ..STRICT
        };
        let mut w = watch(allowed, false);
        assert!(!bytewise(&mut w, &auth(AUTH_CLEARTEXT, b"")).unwrap());
        assert!(bytewise(&mut w, &auth(AUTH_OK, b"")).unwrap());
    }

    #[test]
    fn trust_needs_none() {
        let mut w = watch(STRICT, false);
        assert!(w.feed(&auth(AUTH_OK, b"")).is_err());
        let mut w = watch(
            Policy {
                none: true,
                ..STRICT
            },
            false,
        );
        assert!(matches!(w.feed(&auth(AUTH_OK, b"")), Ok(Next::StepAside)));
    }

    #[test]
    fn scram_iterations_are_capped_and_plus_required_when_asked() {
        let mut w = watch(STRICT, false);
        assert!(matches!(
            w.feed(&auth(AUTH_SASL, b"SCRAM-SHA-256\0\0")),
            Ok(Next::Watch)
        ));
        assert!(w
            .feed(&auth(AUTH_SASL_CONTINUE, b"r=abc,s=c2FsdA==,i=4096"))
            .is_ok());
        let e = w
            .feed(&auth(AUTH_SASL_CONTINUE, b"r=abc,s=c2FsdA==,i=4294967295"))
            .err()
            .unwrap();
        assert!(e.contains("4294967295 SCRAM iterations"), "{e}");

        let plus = Policy {
            require_plus: true,
            ..STRICT
        };
        let mut w = watch(plus, false);
        let e = w
            .feed(&auth(AUTH_SASL, b"SCRAM-SHA-256\0\0"))
            .err()
            .unwrap();
        assert!(e.contains("SCRAM-SHA-256-PLUS"), "{e}");
        let mut w = watch(plus, false);
        assert!(w
            .feed(&auth(AUTH_SASL, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"))
            .is_ok());
    }

    #[test]
    fn tls_accepted_steps_aside_and_other_messages_pass() {
        let mut w = watch(STRICT, true);
        assert!(matches!(w.feed(b"S\x16\x03"), Ok(Next::StepAside)));
        assert!(!w.seen.tls_refused());
        // A NoticeResponse and an ErrorResponse before authentication are not checked.
        let mut w = watch(STRICT, false);
        let mut data = b"N\0\0\0\x06x\0".to_vec();
        data.extend_from_slice(b"E\0\0\0\x06y\0");
        assert!(matches!(w.feed(&data), Ok(Next::Watch)));
        assert!(w.feed(b"R\0\0\0\x02").is_err(), "length below 4");
        let mut w = watch(STRICT, false);
        assert!(w.feed(b"R\x7f\0\0\0").is_err(), "oversized request");
    }
}
