//! Replays a transcript fixture (`tests/fixtures/<tool>/*.transcript`) against a fresh
//! simulated host and reports every difference.
//!
//! Format, one directive per line:
//! * `# …` a comment (the source of what follows belongs here), blank lines ignored;
//! * `@release 13.5-RELEASE` the host's release; `@kld pf` a module loaded at boot;
//! * `@file /etc/pf.conf` then lines `| text`: a file under the host root;
//! * `$ tool arg…` runs a simulated tool (words split on spaces; `$ROOT` is the host root),
//!   followed by its expected output: `> line` on stdout, `! line` on stderr, `? N` the exit
//!   status (0 when omitted). `$ROOT` in expected lines is the host root too.

#![allow(dead_code)]

use std::fs;
use std::path::Path;

use warden_sim::host::SimHost;

struct Step {
    line: usize,
    argv: Vec<String>,
    stdout: String,
    stderr: String,
    rc: i32,
}

/// Sets the host up from the transcript's directives, runs every command and returns the
/// mismatches (empty: the simulator agrees with the fixture).
pub fn replay(host: &SimHost, fixture: &Path) -> Vec<String> {
    let text = fs::read_to_string(fixture).expect("cannot read the fixture");
    let root = host.root.to_string_lossy().into_owned();
    let sub = |s: &str| s.replace("$ROOT", &root);
    let mut steps: Vec<Step> = Vec::new();
    let mut file: Option<(String, String)> = None;
    let flush = |file: &mut Option<(String, String)>| {
        if let Some((path, content)) = file.take() {
            let p = host.path(&path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
    };
    for (n, raw) in text.lines().enumerate() {
        if let Some(content) = raw
            .strip_prefix("| ")
            .or(if raw == "|" { Some("") } else { None })
        {
            let f = file.as_mut().expect("`|` line outside @file");
            f.1.push_str(&sub(content));
            f.1.push('\n');
            continue;
        }
        flush(&mut file);
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        if let Some(v) = raw.strip_prefix("@release ") {
            host.set_freebsd_version(v.trim());
        } else if let Some(m) = raw.strip_prefix("@kld ") {
            host.load_kernel_modules(&[m.trim()]);
        } else if let Some(p) = raw.strip_prefix("@file ") {
            file = Some((p.trim().to_string(), String::new()));
        } else if let Some(cmd) = raw.strip_prefix("$ ") {
            steps.push(Step {
                line: n + 1,
                argv: sub(cmd).split_whitespace().map(String::from).collect(),
                stdout: String::new(),
                stderr: String::new(),
                rc: 0,
            });
        } else {
            let step = steps.last_mut().expect("output line before any command");
            if let Some(l) = raw
                .strip_prefix("> ")
                .or(if raw == ">" { Some("") } else { None })
            {
                step.stdout.push_str(&sub(l));
                step.stdout.push('\n');
            } else if let Some(l) = raw.strip_prefix("! ") {
                step.stderr.push_str(&sub(l));
                step.stderr.push('\n');
            } else if let Some(rc) = raw.strip_prefix("? ") {
                step.rc = rc.trim().parse().expect("bad exit status");
            } else {
                panic!("{}:{}: unknown line {raw:?}", fixture.display(), n + 1);
            }
        }
    }
    flush(&mut file);
    let mut problems = Vec::new();
    for step in &steps {
        let args: Vec<&str> = step.argv[1..].iter().map(String::as_str).collect();
        let out = host.tool(&step.argv[0], &args);
        let got = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        );
        let want = (step.stdout.clone(), step.stderr.clone(), step.rc);
        if got != want {
            problems.push(format!(
                "{}:{}: `{}`\n  expected {want:?}\n  got      {got:?}",
                fixture.display(),
                step.line,
                step.argv.join(" ")
            ));
        }
    }
    problems
}

/// The fixture directory of the repository.
pub fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}
