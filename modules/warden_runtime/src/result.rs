//! The result JSON: exactly one object on stdout. The controller ignores the exit code when
//! the JSON parses (ansible-core `_parse_returned_data`), so failure is always
//! `"failed": true`; secrets are scrubbed here because the controller never does it for a
//! module's own output. A result may also report the secret values the module handled
//! (`_ansible_new_secrets`, a list of strings) so that ansible-core 2.22+ masks them in all
//! of its output, as AnsibleModule does (lib/ansible/module_utils/basic.py,
//! `_return_formatted`; the controller pops the key in lib/ansible/_internal/_task.py).

use serde_json::{Map, Value};

use crate::exec::{CommandError, TimeoutError};

/// What AnsibleModule puts in `invocation.module_args` for a `no_log` parameter.
pub const NO_LOG_PLACEHOLDER: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";
/// What AnsibleModule's `remove_values` puts in place of a secret inside other text.
pub const SCRUBBED: &str = "********";

/// A result being assembled.
#[derive(Debug, Clone, Default)]
pub struct ModuleResult {
    fields: Map<String, Value>,
    new_secrets: Vec<String>,
}

impl ModuleResult {
    pub fn success(changed: bool, msg: String) -> Self {
        let mut r = ModuleResult::default();
        r.set("changed", changed);
        r.set("failed", false);
        r.set("msg", msg);
        r
    }

    pub fn failure(msg: String, changed: bool) -> Self {
        let mut r = ModuleResult::default();
        r.set("changed", changed);
        r.set("failed", true);
        r.set("msg", msg);
        r
    }

    /// Builds a failure from an error chain; a failed command anywhere in the chain fills
    /// `cmd`, `rc`, `stdout` and `stderr` like Ansible's command results.
    pub fn from_error(error: &anyhow::Error, changed: bool) -> Self {
        let mut r = Self::failure(format!("{error:#}"), changed);
        if let Some(cmd) = error.chain().find_map(|e| e.downcast_ref::<CommandError>()) {
            r.set("cmd", cmd.cmd.clone());
            r.set("rc", cmd.rc);
            r.set("stdout", cmd.stdout.clone());
            r.set("stderr", cmd.stderr.clone());
        } else if let Some(t) = error.chain().find_map(|e| e.downcast_ref::<TimeoutError>()) {
            // Killed with SIGKILL: -9, as Python's subprocess reports it.
            r.set("cmd", t.cmd.clone());
            r.set("rc", -9);
            r.set("stdout", t.stdout.clone());
            r.set("stderr", t.stderr.clone());
            r.set("timed_out", true);
        }
        r
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_string(), value.into());
    }

    /// Adds module return values; keys the protocol owns cannot be overwritten.
    pub fn extend(&mut self, values: Map<String, Value>) {
        for (key, value) in values {
            if !matches!(key.as_str(), "changed" | "failed" | "msg" | "invocation")
                && !key.starts_with("_ansible_")
            {
                self.fields.insert(key, value);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// Reports secret values to the controller (`_ansible_new_secrets`): only for a
    /// controller that takes the key (`Internal::takes_new_secrets`), or it warns.
    pub fn report_secrets<'a>(&mut self, values: impl IntoIterator<Item = &'a String>) {
        for value in values {
            if !value.is_empty() && !self.new_secrets.contains(value) {
                self.new_secrets.push(value.clone());
            }
        }
    }

    /// The final JSON text: secrets scrubbed from every string except the invocation,
    /// which already carries placeholders.
    pub fn to_json(&self, secrets: &[String], invocation: Option<Value>) -> String {
        let mut secrets: Vec<&str> = secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = scrub(Value::Object(self.fields.clone()), &secrets);
        if let Value::Object(map) = &mut out {
            if let Some(invocation) = invocation {
                map.insert("invocation".into(), scrub(invocation, &secrets));
            }
            // After scrubbing: this list is the one place the values must stay whole.
            if !self.new_secrets.is_empty() {
                map.insert(
                    "_ansible_new_secrets".into(),
                    self.new_secrets.clone().into(),
                );
            }
        }
        out.to_string()
    }
}

/// `invocation.module_args`: the params with `no_log` ones replaced by the placeholder.
pub fn invocation(params: &Map<String, Value>, no_log_names: &[&str]) -> Value {
    let masked: Map<String, Value> = params
        .iter()
        .map(|(k, v)| {
            let v = if no_log_names.contains(&k.as_str()) && !v.is_null() {
                Value::String(NO_LOG_PLACEHOLDER.into())
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect();
    serde_json::json!({ "module_args": masked })
}

/// Replaces every occurrence of a secret in strings (values and keys), like `remove_values`.
fn scrub(value: Value, secrets: &[&str]) -> Value {
    if secrets.is_empty() {
        return value;
    }
    let clean = |s: String| {
        secrets.iter().fold(s, |acc, secret| {
            if acc.contains(secret) {
                acc.replace(secret, SCRUBBED)
            } else {
                acc
            }
        })
    };
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| scrub(v, secrets)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clean(k), scrub(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_scrubbed_everywhere_but_placeholders_stay() {
        let mut r = ModuleResult::failure("login as bob with hunter2 failed".into(), false);
        r.set("nested", json!({"list": ["hunter2x", 3], "hunter2": true}));
        let params = json!({"user": "bob", "password": "hunter2"});
        let inv = invocation(params.as_object().unwrap(), &["password"]);
        let text = r.to_json(&["hunter2".into()], Some(inv));
        assert!(!text.contains("hunter2"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["msg"], "login as bob with ******** failed");
        assert_eq!(
            v["invocation"]["module_args"]["password"],
            NO_LOG_PLACEHOLDER
        );
        assert_eq!(v["invocation"]["module_args"]["user"], "bob");
        assert_eq!(v["failed"], true);
    }

    #[test]
    fn reported_secrets_stay_whole_only_in_new_secrets() {
        let mut r = ModuleResult::success(true, "set hunter2 for bob".into());
        let secrets = vec!["hunter2".to_string(), String::new(), "hunter2".to_string()];
        r.report_secrets(&secrets);
        let v: Value = serde_json::from_str(&r.to_json(&secrets, None)).unwrap();
        assert_eq!(v["_ansible_new_secrets"], json!(["hunter2"]));
        assert_eq!(v["msg"], "set ******** for bob");
        let plain = ModuleResult::success(true, "ok".into()).to_json(&secrets, None);
        assert!(!plain.contains("_ansible_new_secrets"), "{plain}");
    }

    #[test]
    fn command_errors_fill_command_fields() {
        let err = anyhow::Error::new(CommandError {
            cmd: "/sbin/ifconfig warden0".into(),
            rc: 1,
            stdout: String::new(),
            stderr: "ifconfig: interface warden0 does not exist\n".into(),
        })
        .context("cannot read warden0");
        let r = ModuleResult::from_error(&err, false);
        assert_eq!(r.get("rc"), Some(&json!(1)));
        assert_eq!(r.get("cmd"), Some(&json!("/sbin/ifconfig warden0")));
        assert_eq!(
            r.get("msg"),
            Some(&json!("cannot read warden0: `/sbin/ifconfig warden0` exited with status 1: ifconfig: interface warden0 does not exist"))
        );
    }

    #[test]
    fn timeouts_fill_command_fields() {
        let err = anyhow::Error::new(TimeoutError {
            cmd: "/usr/sbin/service mevy status".into(),
            timeout: std::time::Duration::from_secs(120),
            elapsed: std::time::Duration::from_secs(120),
            stdout: String::new(),
            stderr: "waiting\n".into(),
        })
        .context("cannot ask whether mevy runs");
        let r = ModuleResult::from_error(&err, false);
        assert_eq!(r.get("rc"), Some(&json!(-9)));
        assert_eq!(r.get("timed_out"), Some(&json!(true)));
        assert_eq!(
            r.get("msg"),
            Some(&json!("cannot ask whether mevy runs: `/usr/sbin/service mevy status` did not finish within 120 s (tool_timeout) and was killed with its process group"))
        );
    }

    #[test]
    fn module_values_cannot_override_protocol_keys() {
        let mut r = ModuleResult::success(true, "ok".into());
        r.extend(
            json!({"changed": false, "_ansible_no_log": true, "name": "mevy"})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(r.get("changed"), Some(&json!(true)));
        assert_eq!(r.get("_ansible_no_log"), None);
        assert_eq!(r.get("name"), Some(&json!("mevy")));
    }
}
