//! The args file Ansible hands a binary module: `argv[1]` names a file holding one flat JSON
//! object, user params and `_ansible_*` keys side by side (ansible-core
//! `ActionBase._execute_module`, same on 2.17–2.21). The internal key set changes between
//! releases (`_ansible_string_conversion_action` went away in 2.19, `_ansible_inject_invocation`
//! came in 2.21), so every `_ansible_*` key we do not use is ignored rather than rejected.
//! `_ansible_version` tells which controller features a result may use.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::spec::coerce_bool;

/// The `_ansible_*` keys a module acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Internal {
    pub check_mode: bool,
    pub diff: bool,
    /// `None` before ansible-core 2.21, which always expected `invocation`.
    pub inject_invocation: Option<bool>,
    /// Set by action plugins that pass extra keys on purpose.
    pub ignore_unknown_opts: bool,
    /// `(major, minor)` of `_ansible_version` (`"2.22.0rc1"` -> `(2, 22)`), when given.
    pub version: Option<(u64, u64)>,
}

impl Internal {
    /// Whether the controller takes `_ansible_new_secrets` in a module result: ansible-core
    /// 2.22+ pops it and masks the values (lib/ansible/_internal/_task.py,
    /// `UnifiedTaskResult._from_result_dict`); 2.19-2.21 warn "Removed reserved key" instead.
    pub fn takes_new_secrets(&self) -> bool {
        self.version.is_some_and(|v| v >= (2, 22))
    }
}

/// One parsed args file.
#[derive(Debug, Clone, Default)]
pub struct Args {
    pub params: Map<String, Value>,
    pub internal: Internal,
}

/// The largest args file read (Ansible's are a few KiB).
const MAX_ARGS_SIZE: u64 = 16 << 20;

/// Reads and parses the args file named on the command line: Ansible's own file in its remote
/// temporary directory, or `/dev/stdin` when warden's action plugin pipes the args into the
/// same command that runs the module (a link to a pipe), so it is opened as given. What is
/// read is bounded.
pub fn read_args_file(path: &Path) -> Result<Args> {
    let bytes = read_bounded(path)
        .with_context(|| format!("cannot read the module args file {}", path.display()))?;
    parse_args(&bytes).with_context(|| format!("bad module args file {}", path.display()))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_ARGS_SIZE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ARGS_SIZE {
        bail!("it is larger than {} MiB", MAX_ARGS_SIZE >> 20);
    }
    Ok(bytes)
}

/// Parses the bytes of an args file.
pub fn parse_args(bytes: &[u8]) -> Result<Args> {
    let text = std::str::from_utf8(bytes).context("the args file is not valid UTF-8")?;
    let value: Value = serde_json::from_str(text).context("the args file is not valid JSON")?;
    let Value::Object(object) = value else {
        bail!(
            "the args file must hold a JSON object, got {}",
            crate::spec::type_name(&value)
        );
    };
    let mut args = Args::default();
    for (key, value) in object {
        match key.strip_prefix("_ansible_") {
            Some(internal_key) => apply_internal(&mut args.internal, internal_key, &value)?,
            None => {
                args.params.insert(key, value);
            }
        }
    }
    Ok(args)
}

fn apply_internal(internal: &mut Internal, key: &str, value: &Value) -> Result<()> {
    let flag = |value: &Value| {
        coerce_bool(value).map_err(|e| anyhow::anyhow!("internal key _ansible_{key}: {e}"))
    };
    match key {
        "check_mode" => internal.check_mode = flag(value)?,
        "diff" => internal.diff = flag(value)?,
        "ignore_unknown_opts" => internal.ignore_unknown_opts = flag(value)?,
        "inject_invocation" => internal.inject_invocation = Some(flag(value)?),
        "version" => internal.version = value.as_str().and_then(major_minor),
        _ => {}
    }
    Ok(())
}

/// `"2.22.0rc1"` -> `(2, 22)`.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_user_params_from_internal_keys() {
        let args = parse_args(
            br#"{"name": "mevy", "_ansible_check_mode": true, "_ansible_diff": true,
                 "_ansible_verbosity": 3, "_ansible_version": "2.19.14",
                 "_ansible_some_future_key": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(args.params.len(), 1);
        assert_eq!(args.params["name"], json!("mevy"));
        assert!(args.internal.check_mode);
        assert!(args.internal.diff);
        assert_eq!(args.internal.inject_invocation, None);
        assert_eq!(args.internal.version, Some((2, 19)));
        assert!(!args.internal.takes_new_secrets());
    }

    #[test]
    fn new_secrets_only_for_ansible_core_2_22_and_later() {
        for (version, takes) in [
            ("2.19.14", false),
            ("2.21.5", false),
            ("2.22.0rc1", true),
            ("2.22.1", true),
            ("2.100.0", true),
            ("3.0.0", true),
            ("devel", false),
        ] {
            let text = format!(r#"{{"_ansible_version": "{version}"}}"#);
            let args = parse_args(text.as_bytes()).unwrap();
            assert_eq!(args.internal.takes_new_secrets(), takes, "{version}");
        }
        assert!(!parse_args(b"{}").unwrap().internal.takes_new_secrets());
    }

    #[test]
    fn rejects_non_object_and_malformed_input() {
        let err = parse_args(b"[1, 2]").unwrap_err();
        assert!(
            format!("{err:#}").contains("JSON object, got list"),
            "{err:#}"
        );
        let err = parse_args(b"{\"name\": ").unwrap_err();
        assert!(format!("{err:#}").contains("not valid JSON"), "{err:#}");
        let err = parse_args(b"{\"name\": \"\xff\"}").unwrap_err();
        assert!(format!("{err:#}").contains("not valid UTF-8"), "{err:#}");
    }

    #[test]
    fn internal_flags_accept_ansible_booleans() {
        let args =
            parse_args(br#"{"_ansible_check_mode": "yes", "_ansible_inject_invocation": false}"#)
                .unwrap();
        assert!(args.internal.check_mode);
        assert_eq!(args.internal.inject_invocation, Some(false));
    }
}
