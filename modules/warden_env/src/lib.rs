//! `warden_env`: the agent's `.env` file in its checkout — the deployment guide's keys,
//! rendered by the role on the controller, written here atomically with owner and mode
//! (0600 by default), secret values never shown in output or diff. It exists so the agent
//! play needs nothing but binary modules on the target (no Python for `template`/`copy`).
//!
//! Format: one `KEY=value` per line, keys sorted. A value of plain characters is written
//! bare; anything else in single quotes (no expansion in dotenv parsers), or, when it holds a
//! single quote, in double quotes with `\`, `"`, `$` and `` ` `` escaped, so that sh (`. ./.env`)
//! and expanding dotenv parsers read the exact value back. Newlines are refused: dotenv
//! dialects disagree on them.
//!
//! The diff masks the value of every key in `secret_values` and of every key that looks
//! secret (its name contains `PASSWORD`, `TOKEN`, `SECRET` or `KEY`, in any case), before and
//! after: the old file may hold keys this run no longer knows, and warden-cron's check mode
//! logs every diff. The file is read and written through `warden_runtime::fs`: the agent
//! owns the directory, so a `.env` it replaced with a link (or a FIFO, or a hard link to a
//! host file) is refused and nothing of it is read or shown.
//!
//! Shape (issue 16): params → [`Settings`] ([`checks::settings`], every problem at once) →
//! [`observe::observe`] reads the host once (the file, read without following links, whether
//! its directory exists, the owner's and group's ids) → [`plan::plan`], pure (mkdir, write or
//! remove) → the runtime reports or applies it.

pub mod checks;
pub mod observe;
pub mod plan;

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use warden_runtime::spec::{Param, Spec, State};
use warden_runtime::{Context, Module, Plan};

pub use checks::Settings;
pub use observe::Observed;

pub struct WardenEnv;

/// The params as the spec delivers them (see `library/warden_env.yml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub path: String,
    pub values: Option<BTreeMap<String, String>>,
    pub secret_values: Option<BTreeMap<String, String>>,
    pub state: State,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: String,
    pub create_parent: bool,
}

/// What a secret value shows as in the diff.
const MASK: &str = "********";

impl Module for WardenEnv {
    const NAME: &'static str = "warden_env";
    // Writes one file; runs no host tool, so no tool_timeout, and takes no host lock.
    const RUNS_TOOLS: bool = false;
    const HOST: bool = false;
    type Params = Params;

    fn spec() -> Spec {
        Spec::new(vec![
            Param::path("path").required(),
            Param::dict_of_str("values"),
            Param::dict_of_str("secret_values").no_log(),
            Param::choice::<State>("state").default(State::Present),
            Param::str("owner"),
            Param::str("group"),
            Param::mode("mode").default("0600"),
            Param::bool("create_parent").default(false),
        ])
    }

    fn plan(params: Params, _ctx: &mut Context) -> Result<Plan> {
        let settings = checks::settings(&params)?;
        let observed = observe::observe(&settings)?;
        plan::plan(&settings, &observed)
    }
}

fn quote(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./:@+,-%".contains(c));
    if plain {
        value.to_string()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        let mut quoted = String::from("\"");
        for c in value.chars() {
            if matches!(c, '\\' | '"' | '$' | '`') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    }
}

/// The file's text.
pub fn render(values: &BTreeMap<String, String>, secrets: &BTreeMap<String, String>) -> String {
    let mut all: BTreeMap<&String, &String> = values.iter().collect();
    all.extend(secrets.iter());
    let mut text =
        String::from("# Managed by warden_env; changes here are overwritten on the next run.\n");
    for (key, value) in all {
        text.push_str(&format!("{key}={}\n", quote(value)));
    }
    text
}

/// Words that make a key's value secret wherever the key came from.
const SECRET_WORDS: [&str; 4] = ["PASSWORD", "TOKEN", "SECRET", "KEY"];

/// Whether a key (as written before `=`, e.g. `export API_KEY`) names a secret.
fn looks_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// The text with every secret value replaced, for the diff.
pub(crate) fn masked(text: &str, secrets: &BTreeMap<String, String>) -> String {
    text.lines()
        .map(|line| match line.split_once('=') {
            Some((key, _)) if secrets.contains_key(key.trim()) || looks_secret(key) => {
                format!("{key}={MASK}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rendering_and_quoting() {
        let text = render(
            &map(&[
                ("AGENT_NAME", "mevy"),
                ("ASSISTANT_NAME", "Mevy the Great"),
                ("Q", "it's \"x\" for $5 `now`"),
            ]),
            &map(&[("WARDEN_DB_PASSWORD", "s3cr3t$")]),
        );
        assert_eq!(
            text,
            "# Managed by warden_env; changes here are overwritten on the next run.\nAGENT_NAME=mevy\nASSISTANT_NAME='Mevy the Great'\nQ=\"it's \\\"x\\\" for \\$5 \\`now\\`\"\nWARDEN_DB_PASSWORD='s3cr3t$'\n"
        );
        let shown = masked(&text, &map(&[("WARDEN_DB_PASSWORD", "s3cr3t$")]));
        assert!(shown.contains("WARDEN_DB_PASSWORD=********\n") && !shown.contains("s3cr3t"));
    }

    #[test]
    fn the_diff_masks_secret_looking_keys_old_and_new() {
        let old = "# admin notes\nAPI_TOKEN=tok-old\nexport aws_secret_access_key=ak-old\nDB_Password = pw-old\nSSH_KEYFILE=/k\nAGENT_NAME=mevy\nWARDEN_DB_PASSWORD='given'\n";
        let shown = masked(old, &map(&[("WARDEN_DB_PASSWORD", "given")]));
        for leaked in ["tok-old", "ak-old", "pw-old", "/k", "given"] {
            assert!(!shown.contains(leaked), "{leaked} shown: {shown}");
        }
        assert!(
            shown.contains("AGENT_NAME=mevy\n") && shown.contains("# admin notes\n"),
            "{shown}"
        );
        assert!(shown.contains("API_TOKEN=********\n"), "{shown}");
        // A key in values that looks secret is masked too.
        let text = render(
            &map(&[("OPENAI_API_KEY", "sk-live"), ("MODE", "x")]),
            &BTreeMap::new(),
        );
        let shown = masked(&text, &BTreeMap::new());
        assert!(
            !shown.contains("sk-live") && shown.contains("MODE=x\n"),
            "{shown}"
        );
    }

    #[test]
    fn sh_reads_every_value_back_exactly() {
        let values = map(&[
            ("A", "plain-1.2"),
            ("B", "two words"),
            ("C", "it's \"x\" $HOME `id` \\n \\"),
            ("D", "$(id) ${x} '"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, render(&values, &BTreeMap::new())).unwrap();
        for (key, value) in &values {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(". \"$1\"; printf %s \"${key}\""))
                .arg("sh")
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), *value, "{key}");
        }
    }

    #[test]
    fn params_spec_and_docs_agree() {
        warden_testkit::assert_params_agree::<WardenEnv>(include_str!(
            "../../../library/warden_env.yml"
        ));
    }
}
