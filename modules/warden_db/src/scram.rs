//! Comparing a password with what PostgreSQL stores, without ever sending the password.
//!
//! `pg_authid.rolpassword` holds `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
//! (base64, RFC 5803; catalog-pg-authid.html), or `md5<hex>` from older setups, or NULL.
//! A password matches a SCRAM verifier when, with the *stored* salt and iteration count,
//! `SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, i)`,
//! `StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key"))` and
//! `ServerKey = HMAC(SaltedPassword, "Server Key")` both equal the stored ones (RFC 5802/7677).
//! New verifiers come from `postgres_protocol::password::scram_sha_256` (random salt).
//!
//! The iteration count is whatever the verifier says, and a role may set its own verifier
//! (`ALTER ROLE self PASSWORD 'SCRAM-SHA-256$4294967295:…'`), so it is not trusted: a count
//! above [`MAX_ITERATIONS`] is not recomputed, and the password counts as changed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The most PBKDF2 iterations warden_db computes, for a stored verifier and for the server's
/// SCRAM challenge at login alike: the driver's own cap for the login (postgres-protocol
/// 0.6.12, `src/authentication/sasl.rs`, `MAX_ITERATION_COUNT`, chosen like pgjdbc's for
/// CVE-2026-42198), about 24 times PostgreSQL's default of 4096 (`scram_iterations`,
/// PostgreSQL 16+). It costs about 70 ms in the release build (`hmac`/`sha2` at opt-level 3;
/// 0.7 s per million measured on the 2-CPU development machine), where 2^31 - 1 would take
/// some 25 minutes.
pub const MAX_ITERATIONS: u32 = 100_000;

/// What the catalog holds for a role's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    None,
    Scram {
        iterations: u32,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
    },
    Md5,
    /// Neither format: a plaintext password from an ancient setup, or something unknown.
    Other,
}

impl Stored {
    pub fn parse(rolpassword: Option<&str>) -> Stored {
        let Some(text) = rolpassword else {
            return Stored::None;
        };
        if text.starts_with("md5") && text.len() == 35 {
            return Stored::Md5;
        }
        Self::parse_scram(text).unwrap_or(Stored::Other)
    }

    fn parse_scram(text: &str) -> Option<Stored> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iter_salt.split_once(':')?;
        let (stored_key, server_key) = keys.split_once(':')?;
        Some(Stored::Scram {
            iterations: iterations.parse().ok().filter(|i| *i > 0)?,
            salt: STANDARD.decode(salt).ok()?,
            stored_key: STANDARD.decode(stored_key).ok()?,
            server_key: STANDARD.decode(server_key).ok()?,
        })
    }

    /// A SCRAM verifier's iteration count above [`MAX_ITERATIONS`].
    pub fn too_costly(&self) -> Option<u32> {
        match self {
            Stored::Scram { iterations, .. } if *iterations > MAX_ITERATIONS => Some(*iterations),
            _ => None,
        }
    }

    /// Whether `password` is the one stored. Only a SCRAM verifier within
    /// [`MAX_ITERATIONS`] can say yes: MD5 and plaintext entries are replaced by a SCRAM
    /// verifier anyway, and so is one too costly to recompute.
    pub fn matches(&self, password: &str) -> bool {
        let Stored::Scram {
            iterations,
            salt,
            stored_key,
            server_key,
        } = self
        else {
            return false;
        };
        if *iterations > MAX_ITERATIONS {
            return false;
        }
        let salted = pbkdf2_sha256(&normalize(password), salt, *iterations);
        let client_key = hmac(&salted, b"Client Key");
        let computed_stored = Sha256::digest(client_key);
        // Compared in constant time by hmac's `verify_slice`: the ServerKey is an HMAC
        // itself; the StoredKey is a hash, so its HMAC under the salted password is compared
        // instead (equal exactly when the keys are).
        let server_ok =
            keyed(&salted, b"Server Key").is_some_and(|m| m.verify_slice(server_key).is_ok());
        let stored_ok = keyed(&salted, stored_key)
            .is_some_and(|m| m.verify_slice(&hmac(&salted, &computed_stored)).is_ok());
        server_ok & stored_ok
    }
}

/// SASLprep, skipped (as libpq does) when the password is not valid for it.
fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(prepared) => prepared.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// HMAC-SHA-256 of `message` under `key`, before finalizing (HMAC accepts keys of any
/// length, so `None` does not happen).
fn keyed(key: &[u8], message: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac)
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    keyed(key, message)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// PBKDF2 with HMAC-SHA-256 and one output block (SCRAM's `Hi()`). The keyed HMAC state is
/// made once and cloned per iteration, which halves the hashing of the naive form.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let keyed = match HmacSha256::new_from_slice(password) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = mac.finalize().into_bytes();
    let mut result = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes();
        for (r, x) in result.iter_mut().zip(&u) {
            *r ^= x;
        }
    }
    result.to_vec()
}

/// A fresh SCRAM verifier for `password` (random salt, 4096 iterations).
pub fn verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_verifiers_match_their_password_only() {
        let v = verifier("hunter2");
        let stored = Stored::parse(Some(&v));
        assert!(matches!(
            stored,
            Stored::Scram {
                iterations: 4096,
                ..
            }
        ));
        assert!(stored.matches("hunter2"));
        assert!(!stored.matches("hunter3"));
        assert!(!stored.matches(""));
    }

    #[test]
    fn rfc7677_test_vector() {
        // RFC 7677 section 3's inputs (password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096
        // iterations); StoredKey and ServerKey computed independently with Python's hashlib.
        let stored = Stored::parse(Some(
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        ));
        assert!(stored.matches("pencil"));
        assert!(!stored.matches("pencils"));
    }

    /// Both keys count: a verifier whose StoredKey (what the server checks a login's proof
    /// against) or ServerKey belongs to another password is not the password's.
    #[test]
    fn a_verifier_with_one_key_of_another_password_does_not_match() {
        let (a, b) = (verifier("pencil"), verifier("pencils"));
        let parts = |v: &str| {
            let (head, keys) = v.rsplit_once('$').unwrap();
            let (stored, server) = keys.split_once(':').unwrap();
            (head.to_string(), stored.to_string(), server.to_string())
        };
        let (head_a, stored_a, server_a) = parts(&a);
        let (_, stored_b, server_b) = parts(&b);
        // b's keys under a's salt cannot match a's password; mix the keys to be sure each
        // comparison decides.
        let mixed = format!("{head_a}${stored_a}:{server_b}");
        assert!(!Stored::parse(Some(&mixed)).matches("pencil"));
        let mixed = format!("{head_a}${stored_b}:{server_a}");
        assert!(!Stored::parse(Some(&mixed)).matches("pencil"));
        assert!(Stored::parse(Some(&format!("{head_a}${stored_a}:{server_a}"))).matches("pencil"));
    }

    #[test]
    fn stored_verifier_with_too_many_iterations_is_not_recomputed() {
        // Without the cap this would run 2^32 - 1 PBKDF2 rounds (tens of minutes).
        let huge = "SCRAM-SHA-256$4294967295:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        let stored = Stored::parse(Some(huge));
        assert_eq!(stored.too_costly(), Some(u32::MAX));
        assert!(!stored.matches("pencil"));
        let at_cap = Stored::parse(Some(&huge.replace("4294967295", "100000")));
        assert_eq!(at_cap.too_costly(), None);
    }

    #[test]
    fn other_formats() {
        assert_eq!(Stored::parse(None), Stored::None);
        assert_eq!(
            Stored::parse(Some("md5fd84fc8b8e6e3b1d6b3c3c5fa1f8b6d1")),
            Stored::Md5
        );
        assert_eq!(Stored::parse(Some("plaintext")), Stored::Other);
        assert_eq!(Stored::parse(Some("SCRAM-SHA-256$x:y$z:w")), Stored::Other);
        assert!(!Stored::Md5.matches("x"));
    }
}
