//! The rules an agent's settings obey, one function each, used by the layout and by the
//! modules that take the same values (`warden_rcd`'s locales; the network modules' private
//! ranges). Each returns the message a user sees, naming the setting or parameter.

use std::fmt::Display;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use warden_runtime::ipv4;

use crate::table::PREFIX_LEN;

/// Agent names are at most this long.
pub const AGENT_NAME_MAX: usize = 31;

/// An agent name starts with a lower-case letter and holds only `a-z`, `0-9` and `_`, at
/// most 31 characters: it names the rc.d service (a shell identifier), the tmux session,
/// the jails and the database.
pub fn check_agent_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = name.len() <= AGENT_NAME_MAX
        && matches!(bytes.next(), Some(b) if b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "agent name '{name}' must start with a lower-case letter and hold only a-z, 0-9 and _ (at most {AGENT_NAME_MAX}): it names the rc.d service, the tmux session, the jails and the database"
        ))
    }
}

/// `10.0.1` → the agent's /24, `10.0.1.0/24`: exactly three decimal octets, no leading
/// zeros (which would read as octal elsewhere).
pub fn parse_subnet_base(base: &str) -> Result<Ipv4Net, String> {
    let bad = || {
        format!(
            "subnet_base '{base}' must be the first three octets of the agent's /24, e.g. 10.0.1"
        )
    };
    if base.split('.').count() != 3 {
        return Err(bad());
    }
    let network: Ipv4Addr = format!("{base}.0").parse().map_err(|_| bad())?;
    Ipv4Net::new(network, PREFIX_LEN).map_err(|_| bad())
}

/// Private ranges only (RFC 1918, the runtime's [`ipv4::is_private`]) unless the user
/// allows public ones. `subject` names what is checked (`10.0.1.1/24`, `subnet_base 8.8.8`).
pub fn check_private(
    subject: impl Display,
    net: &Ipv4Net,
    allow_public: bool,
) -> Result<(), String> {
    if allow_public || ipv4::is_private(net) {
        Ok(())
    } else {
        Err(format!(
            "{subject} is not in a private range (10/8, 172.16/12, 192.168/16); set allow_public: true to use it anyway"
        ))
    }
}

/// The system locale (`LANG`, `LC_ALL`) must be a UTF-8 locale spelled the FreeBSD way:
/// `xx_YY.UTF-8` (or `xxx_YY.UTF-8`), or `C.UTF-8`. FreeBSD's locale directories are
/// named so (`/usr/share/locale/sl_SI.UTF-8`); `utf8` spellings are glibc's.
pub fn check_system_locale(locale: &str) -> Result<(), String> {
    let (base, encoding) = locale.split_once('.').unwrap_or((locale, ""));
    let base_ok = base == "C" || {
        let (lang, country) = base.split_once('_').unwrap_or(("", ""));
        (2..=3).contains(&lang.len())
            && lang.bytes().all(|b| b.is_ascii_lowercase())
            && country.len() == 2
            && country.bytes().all(|b| b.is_ascii_uppercase())
    };
    if !base_ok {
        return Err(format!(
            "system_locale {locale:?} is not a locale name such as sl_SI.UTF-8"
        ));
    }
    if encoding.eq_ignore_ascii_case("utf8")
        || (encoding.eq_ignore_ascii_case("utf-8") && encoding != "UTF-8")
    {
        return Err(format!(
            "system_locale {locale:?} is not a FreeBSD locale name; FreeBSD spells it {base}.UTF-8"
        ));
    }
    if encoding != "UTF-8" {
        return Err(format!("system_locale must be a UTF-8 locale such as {base}.UTF-8 (legacy encodings are not supported): got {locale:?}"));
    }
    Ok(())
}

/// A BCP 47 language tag such as `sl-SI`, `de-DE` or `zh-Hans-CN` (`label` names the
/// setting: `display_locale`, `assistant_locale`).
pub fn check_language_tag(label: &str, tag: &str) -> Result<(), String> {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or("");
    let ok = (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{label} {tag:?} must be a BCP 47 language tag such as sl-SI or de-DE"
        ))
    }
}

/// Ansible's booleans (`ansible.module_utils.parsing.convert_bool`): true, false, yes, no,
/// on, off, y, n, t, f, 1, 0, any case.
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_names() {
        for ok in ["mevy", "a", "agent_7", &"a".repeat(31)] {
            assert!(check_agent_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Mevy",
            "7up",
            "_x",
            "me-vy",
            "me vy",
            "mevy\n",
            &"a".repeat(32),
            "mévy",
        ] {
            let msg = check_agent_name(bad).unwrap_err();
            assert!(
                msg.contains("must start with a lower-case letter"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn subnet_bases() {
        assert_eq!(
            parse_subnet_base("10.0.1").unwrap().to_string(),
            "10.0.1.0/24"
        );
        assert_eq!(
            parse_subnet_base("192.168.255").unwrap().to_string(),
            "192.168.255.0/24"
        );
        for bad in [
            "", "10.0", "10.0.1.0", "10.0.300", "10.0.01", "10.0.-1", "10.0.1 ", "a.b.c", "10..1",
            "+10.0.1",
        ] {
            let msg = parse_subnet_base(bad).unwrap_err();
            assert!(
                msg.contains("must be the first three octets"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn private_ranges() {
        let net: Ipv4Net = "8.8.8.0/24".parse().unwrap();
        let msg = check_private("subnet_base 8.8.8", &net, false).unwrap_err();
        assert_eq!(msg, "subnet_base 8.8.8 is not in a private range (10/8, 172.16/12, 192.168/16); set allow_public: true to use it anyway");
        assert!(check_private("x", &net, true).is_ok());
        assert!(check_private("x", &"172.16.1.0/24".parse().unwrap(), false).is_ok());
    }

    #[test]
    fn system_locales() {
        for ok in ["sl_SI.UTF-8", "C.UTF-8", "ast_ES.UTF-8"] {
            assert!(check_system_locale(ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("en_US.utf8", "FreeBSD spells it en_US.UTF-8"),
            ("en_US.utf-8", "FreeBSD spells it en_US.UTF-8"),
            ("sl_SI.ISO8859-2", "legacy encodings"),
            ("sl_SI", "legacy encodings"),
            ("sl-SI.UTF-8", "not a locale name"),
            ("", "not a locale name"),
        ] {
            let msg = check_system_locale(bad).unwrap_err();
            assert!(msg.contains(needle), "{bad}: {msg}");
        }
    }

    #[test]
    fn language_tags() {
        for ok in ["sl-SI", "de-DE", "zh-Hans-CN", "en"] {
            assert!(check_language_tag("display_locale", ok).is_ok(), "{ok}");
        }
        for bad in ["sl_SI", "SL-si", "", "s", "sl-", "sl-SI.UTF-8"] {
            let msg = check_language_tag("display_locale", bad).unwrap_err();
            assert!(
                msg.starts_with("display_locale ") && msg.contains("BCP 47"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn booleans_as_ansible_reads_them() {
        for (v, want) in [
            (json!(true), Some(true)),
            (json!("yes"), Some(true)),
            (json!("On"), Some(true)),
            (json!(1), Some(true)),
            (json!("0"), Some(false)),
            (json!("FALSE"), Some(false)),
            (json!(0), Some(false)),
            (json!("maybe"), None),
            (json!(2), None),
            (json!(null), None),
            (json!([]), None),
        ] {
            assert_eq!(boolean(&v), want, "{v}");
        }
    }
}
