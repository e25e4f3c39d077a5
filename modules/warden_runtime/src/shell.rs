//! Quoting for FreeBSD's sh(1): every value that ends up in a generated script or a
//! displayed command goes through [`sh_quote`].

/// Quotes `s` as one sh word. Plain words stay bare; anything else is single-quoted with
/// each `'` written as `'\''`, which sh reads back byte for byte (no expansion of `$`,
/// backticks, backslashes or newlines inside single quotes).
pub fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Quotes each word and joins them with spaces: a command line for `sh -c`.
pub fn sh_join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| sh_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True for a valid sh variable name (`[A-Za-z_][A-Za-z0-9_]*`), which is also what rc.subr
/// needs of a service name (it `eval`s `${name}_enable`) and what sysrc accepts.
pub fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(sh_quote("/usr/local/bin/tmux"), "/usr/local/bin/tmux");
        assert_eq!(sh_quote("mevy_enable=YES"), "mevy_enable=YES");
    }

    #[test]
    fn hostile_values_round_trip_through_sh() {
        for value in [
            "",
            "a b",
            "it's",
            "$(touch /tmp/x)",
            "`id`",
            "a\nb",
            "\\",
            "'\"'",
            "*",
        ] {
            let script = format!("printf %s {}", sh_quote(value));
            let out = Command::new("/bin/sh")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value, "{script}");
        }
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("mevy"));
        assert!(is_identifier("_a1"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("me-vy"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("mévy"));
    }
}
