//! The pure planner: `(&Settings, &Observed) -> Plan`. It reads nothing and writes nothing;
//! the table tests below build [`Observed`] in code and check the steps, the diff (secrets
//! masked), `changed` and the values.

use std::path::Path;

use anyhow::{bail, Result};

use warden_runtime::fs::Attrs;
use warden_runtime::plan::{MakeDir, RemoveFile, WriteFile};
use warden_runtime::spec::State;
use warden_runtime::{Diff, Plan};

use crate::observe::Observed;
use crate::{masked, render, Settings};

pub fn plan(p: &Settings, o: &Observed) -> Result<Plan> {
    let (values, secrets) = (&p.values, &p.secrets);
    let path = &o.path;
    let shown_path = p.path.display().to_string();
    let before_text = o
        .file
        .as_ref()
        .map(|s| String::from_utf8_lossy(&s.content).into_owned())
        .unwrap_or_default();
    let mut plan = Plan::new();
    plan.value("path", shown_path.clone());
    if p.state == State::Absent {
        if let Some(previous) = &o.file {
            plan.step(RemoveFile {
                path: path.clone(),
                previous: Some(previous.clone()),
            });
            plan.diff(Diff::new(shown_path, masked(&before_text, secrets), ""));
        }
        return Ok(plan);
    }
    let attrs = Attrs {
        mode: Some(p.mode),
        uid: o.uid,
        gid: o.gid,
    };
    if !o.parent_exists {
        let parent = path.parent().unwrap_or(Path::new("/"));
        if !p.create_parent {
            bail!(
                "{} does not exist (the agent's checkout); create it or set create_parent: true",
                parent.display()
            );
        }
        plan.step(MakeDir {
            path: parent.to_owned(),
            attrs: Attrs {
                mode: Some(0o750),
                ..attrs
            },
        });
    }
    let text = render(values, secrets);
    let differs = o
        .file
        .as_ref()
        .is_none_or(|s| s.content != text.as_bytes() || !attrs.satisfied_by(s));
    if differs {
        plan.step(WriteFile {
            path: path.clone(),
            content: text.clone().into_bytes(),
            attrs,
            previous: o.file.clone(),
        });
    }
    plan.diff(Diff::new(
        shown_path,
        masked(&before_text, secrets),
        masked(&text, secrets),
    ));
    plan.value(
        "env_keys",
        values
            .keys()
            .chain(secrets.keys())
            .cloned()
            .collect::<Vec<_>>(),
    );
    Ok(plan)
}

#[cfg(test)]
mod tests {
    //! Table tests of the planner: every case builds the file as [`Observed`] in code.
    use serde_json::{json, Value};
    use warden_runtime::fs::FileState;

    use super::*;
    use crate::{checks, WardenEnv};

    const PATH: &str = "/home/mevy/agent/.env";

    /// The settings of a run with `args` over the `.env` of agent mevy.
    fn params(args: Value) -> Settings {
        let mut raw = json!({
            "path": PATH,
            "values": {"AGENT_NAME": "mevy"},
            "secret_values": {"WARDEN_DB_PASSWORD": "Canary-9"},
        });
        raw.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        checks::settings(&warden_testkit::params::<WardenEnv>(raw)).unwrap()
    }

    const TEXT: &str = "# Managed by warden_env; changes here are overwritten on the next run.\nAGENT_NAME=mevy\nWARDEN_DB_PASSWORD=Canary-9\n";
    const SHOWN: &str = "# Managed by warden_env; changes here are overwritten on the next run.\nAGENT_NAME=mevy\nWARDEN_DB_PASSWORD=********\n";

    fn state(text: &str, mode: u32, uid: u32) -> Option<FileState> {
        Some(FileState {
            content: text.as_bytes().to_vec(),
            mode,
            uid,
            gid: 1001,
        })
    }

    fn host(file: Option<FileState>) -> Observed {
        Observed {
            path: PATH.into(),
            file,
            parent_exists: true,
            uid: Some(1001),
            gid: Some(1001),
        }
    }

    fn ok(args: Value, o: &Observed) -> Plan {
        plan(&params(args), o).unwrap()
    }

    fn diff(plan: &Plan) -> Option<(&str, &str)> {
        plan.diffs
            .first()
            .map(|d| (d.before.as_str(), d.after.as_str()))
    }

    #[test]
    fn a_new_file_and_a_converged_one() {
        let plan = ok(json!({}), &host(None));
        assert_eq!(plan.describe(), [format!("write {PATH}")]);
        assert_eq!(diff(&plan), Some(("", SHOWN)));
        assert_eq!(
            plan.values["env_keys"],
            json!(["AGENT_NAME", "WARDEN_DB_PASSWORD"])
        );
        let same = ok(json!({}), &host(state(TEXT, 0o600, 1001)));
        assert!(!same.changes());
        assert!(same.diffs.is_empty());
    }

    #[test]
    fn drift_in_content_mode_or_owner_rewrites_it() {
        for file in [
            state("AGENT_NAME=old\n", 0o600, 1001),
            state(TEXT, 0o644, 1001),
            state(TEXT, 0o600, 0),
        ] {
            let plan = ok(json!({}), &host(file.clone()));
            assert_eq!(plan.describe(), [format!("write {PATH}")], "{file:?}");
        }
        // Without owner/group the file's own are kept.
        let mut o = host(state(TEXT, 0o600, 0));
        (o.uid, o.gid) = (None, None);
        assert!(!ok(json!({}), &o).changes());
    }

    #[test]
    fn secrets_never_show_in_the_diff_before_or_after() {
        let old = "API_TOKEN=tok-old\nWARDEN_DB_PASSWORD=old-secret\nAGENT_NAME=mevy\n";
        let plan = ok(json!({}), &host(state(old, 0o600, 1001)));
        let (before, after) = diff(&plan).unwrap();
        assert_eq!(
            before,
            "API_TOKEN=********\nWARDEN_DB_PASSWORD=********\nAGENT_NAME=mevy\n"
        );
        assert_eq!(after, SHOWN);
        let plan = ok(json!({"state": "absent"}), &host(state(old, 0o600, 1001)));
        assert_eq!(diff(&plan).unwrap().0, before);
    }

    #[test]
    fn the_checkout_directory() {
        let mut o = host(None);
        o.parent_exists = false;
        assert_eq!(
            plan(&params(json!({})), &o)
                .err()
                .map(|e| e.to_string())
                .unwrap(),
            "/home/mevy/agent does not exist (the agent's checkout); create it or set create_parent: true"
        );
        let plan = ok(json!({"create_parent": true}), &o);
        assert_eq!(
            plan.describe(),
            [
                "mkdir /home/mevy/agent".to_string(),
                format!("write {PATH}")
            ]
        );
    }

    #[test]
    fn absent() {
        let plan = ok(json!({"state": "absent"}), &host(state(TEXT, 0o600, 1001)));
        assert_eq!(plan.describe(), [format!("remove {PATH}")]);
        assert_eq!(diff(&plan), Some((SHOWN, "")));
        let plan = ok(json!({"state": "absent"}), &host(None));
        assert!(!plan.changes());
        assert!(plan.diffs.is_empty());
        // A missing directory does not matter for absent.
        let mut o = host(None);
        o.parent_exists = false;
        assert!(!ok(json!({"state": "absent"}), &o).changes());
    }
}
