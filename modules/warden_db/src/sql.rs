//! Names and SQL text. DDL cannot take bind parameters (PostgreSQL rejects `$1` in utility
//! statements, SQLSTATE 42601), so identifiers and literals are escaped on the client with
//! `postgres_protocol::escape` (libpq's PQescapeIdentifier/PQescapeLiteral), after names
//! have been checked against a strict rule: a name that needs more is refused, not escaped.

use anyhow::{bail, Result};
use postgres_protocol::escape::{escape_identifier, escape_literal};

/// NAMEDATALEN - 1: longer names are silently truncated by the server.
pub const MAX_NAME_BYTES: usize = 63;

/// Names PostgreSQL reserves for roles (`role name "x" is reserved`) and words pg_hba.conf
/// reads as keywords, which would make an entry for the agent mean something else.
const RESERVED: [&str; 10] = [
    "public",
    "none",
    "current_user",
    "session_user",
    "current_role",
    "all",
    "sameuser",
    "samerole",
    "samegroup",
    "replication",
];

/// Checks a role or database name (`what` names the parameter in messages).
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("{what} is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        bail!(
            "{what} {name:?} is {} bytes; PostgreSQL names are at most {MAX_NAME_BYTES} bytes (longer ones are silently truncated)",
            name.len()
        );
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        bail!("{what} {name:?} is not an allowed name: use a letter or _ first, then letters, digits, _, - or .");
    }
    if name.to_ascii_lowercase().starts_with("pg_") {
        bail!("{what} {name:?} starts with pg_, which PostgreSQL reserves");
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        bail!("{what} {name:?} is reserved (by PostgreSQL or as a pg_hba.conf keyword)");
    }
    Ok(())
}

/// A quoted identifier: `"name"` with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    escape_identifier(name)
}

/// A quoted literal: `'text'` with embedded quotes doubled (`E'…'` when it holds `\`).
pub fn literal(text: &str) -> String {
    escape_literal(text)
}

/// A locale's spelling normalized for comparison: the codeset part compared without case or
/// dashes (`sl_SI.UTF-8` = `sl_SI.utf8`), the rest as written.
pub fn normalize_locale(locale: &str) -> String {
    match locale.split_once('.') {
        Some((base, rest)) => {
            let (codeset, modifier) = rest
                .split_once('@')
                .map(|(c, m)| (c, Some(m)))
                .unwrap_or((rest, None));
            let codeset = codeset.to_ascii_lowercase().replace(['-', '_'], "");
            match modifier {
                Some(m) => format!("{base}.{codeset}@{m}"),
                None => format!("{base}.{codeset}"),
            }
        }
        None => locale.to_string(),
    }
}

/// An encoding name normalized for comparison (`UTF-8` = `utf8` = `UTF8`).
pub fn normalize_encoding(encoding: &str) -> String {
    encoding.to_ascii_uppercase().replace(['-', '_'], "")
}

/// Locale and encoding values go into DDL as literals; keep them to their usual characters.
pub fn check_setting(what: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.len() > 128
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-@".contains(c))
    {
        bail!("{what} {value:?} is not a locale or encoding name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("name", "mevy").is_ok());
        assert!(check_name("name", "Agent-B.2").is_ok());
        assert!(check_name("name", &"a".repeat(63)).is_ok());
        let msg = |n: &str| check_name("name", n).unwrap_err().to_string();
        assert!(msg(&"a".repeat(64)).contains("at most 63 bytes"));
        assert!(msg("pg_agent").contains("reserves"));
        assert!(msg("PUBLIC").contains("reserved"));
        assert!(msg("all").contains("pg_hba.conf keyword"));
        for evil in ["x\"; DROP ROLE postgres; --", "a b", "x'y", "1abc", "", "é"] {
            assert!(check_name("name", evil).is_err(), "{evil}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(ident("mevy"), "\"mevy\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b"), " E'a\\\\b'");
    }

    #[test]
    fn locale_spellings() {
        assert_eq!(
            normalize_locale("sl_SI.UTF-8"),
            normalize_locale("sl_SI.utf8")
        );
        assert_ne!(
            normalize_locale("sl_SI.UTF-8"),
            normalize_locale("de_DE.UTF-8")
        );
        assert_eq!(normalize_locale("C"), "C");
        assert_eq!(normalize_encoding("utf-8"), "UTF8");
    }
}
