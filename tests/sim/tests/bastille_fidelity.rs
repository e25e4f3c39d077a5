//! The simulated Bastille against the behaviour recorded from Bastille's sources, per version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use warden_sim::host::SimHost;

fn run(host: &SimHost, tool: &str, args: &[&str]) -> (String, String, i32) {
    let out = host.tool(tool, args);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn host_with_bridge(version: &str) -> SimHost {
    let host = SimHost::new();
    std::fs::write(host.path("/sim/bastille.version"), version).unwrap();
    host.tool("ifconfig", &["bridge0", "create", "name", "warden0", "up"]);
    assert_eq!(run(&host, "bastille", &["bootstrap", "14.2-RELEASE"]).2, 0);
    host
}

#[test]
fn bastille_1_4_4_create_start_stop_and_messages() {
    let host = host_with_bridge("1.4.4");
    let (out, err, rc) = run(
        &host,
        "bastille",
        &[
            "create",
            "-B",
            "mevy-git",
            "14.2-RELEASE",
            "10.0.1.2/24",
            "warden0",
        ],
    );
    assert_eq!((out.as_str(), rc), ("\n", 1));
    assert!(
        err.ends_with("[ERROR]: VNET jail names may not contain (-|_) characters.\n"),
        "{err}"
    );
    let (out, err, rc) = run(
        &host,
        "bastille",
        &[
            "create",
            "-B",
            "-g",
            "10.0.1.1",
            "mevygit",
            "14.2-RELEASE",
            "10.0.1.2/24",
            "warden0",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out, "mevygit: created\n");
    assert!(
        err.contains("\nValid IP: 10.0.1.2/24\n"),
        "1.4.x info goes to stderr: {err}"
    );
    let rc_conf = host.read("/usr/local/bastille/jails/mevygit/root/etc/rc.conf");
    assert!(
        rc_conf.starts_with(
            "ifconfig_e0b_mevygit_name=\"vnet0\"\nifconfig_vnet0=\"inet 10.0.1.2/24\"\n"
        ),
        "{rc_conf}"
    );
    assert!(rc_conf.contains("defaultrouter=\"10.0.1.1\"\n"));
    let conf = host.read("/usr/local/bastille/jails/mevygit/jail.conf");
    assert!(
        conf.contains("  vnet;\n  vnet.interface = e0b_mevygit;\n")
            && conf.contains("ifconfig warden0 addm e0a_mevygit")
    );
    assert_eq!(run(&host, "jls", &["name"]).0, "mevygit\n");
    assert!(
        String::from_utf8_lossy(&host.tool("ifconfig", &["warden0"]).stdout)
            .contains("member: e0a_mevygit")
    );

    assert_eq!(
        run(&host, "bastille", &["start", "mevygit"]),
        (
            String::new(),
            "\n[mevygit]:\nJail is already running.\n".into(),
            0
        )
    );
    assert_eq!(
        run(&host, "bastille", &["stop", "mevygit"]).0,
        "mevygit: removed\n"
    );
    assert_eq!(
        run(&host, "bastille", &["stop", "mevygit"]),
        (
            String::new(),
            "\n[mevygit]:\nJail is already stopped.\n".into(),
            0
        )
    );
    assert_eq!(
        run(&host, "jls", &["-j", "mevygit", "jid"]),
        (String::new(), "jls: jail \"mevygit\" not found\n".into(), 1)
    );
    // Loose target matching: a prefix finds the jail.
    assert_eq!(
        run(&host, "bastille", &["start", "mevy"]).0,
        "mevygit: created\n"
    );
    assert_eq!(run(&host, "bastille", &["list", "jails"]).0, "mevygit\n");
    assert_eq!(
        run(&host, "bastille", &["list"]).0,
        " JID  Name     Boot  Prio  State  Type  IP Address  Published Ports  Release          Tags\n 2    mevygit  on    99    Up     thin  10.0.1.2    -                14.2-RELEASE-p1  -\n",
        "a restarted jail gets a new JID"
    );
}

#[test]
fn long_names_get_bastille_n_epairs_on_1_1_1_and_later() {
    let host = host_with_bridge("1.4.4");
    assert_eq!(
        run(
            &host,
            "bastille",
            &[
                "create",
                "-B",
                "mevyllamacpp",
                "14.2-RELEASE",
                "10.0.1.4/24",
                "warden0"
            ]
        )
        .2,
        0
    );
    let conf = host.read("/usr/local/bastille/jails/mevyllamacpp/jail.conf");
    // 1.1.1.251118 `common.sh`: `epair_num=1` is the first candidate (was e0b_bastille0 here, wrongly).
    assert!(conf.contains("vnet.interface = e0b_bastille1;"), "{conf}");
    let rc_conf = host.read("/usr/local/bastille/jails/mevyllamacpp/root/etc/rc.conf");
    assert!(
        rc_conf.contains("defaultrouter=\"192.168.122.1\""),
        "without -g the host's default route: {rc_conf}"
    );
}

#[test]
fn bastille_1_0_accepts_dashes_and_0_14_lists_like_jls() {
    let host = host_with_bridge("1.0.20250714");
    let (out, _, rc) = run(
        &host,
        "bastille",
        &[
            "create",
            "-B",
            "mevy-git",
            "14.2-RELEASE",
            "10.0.1.2/24",
            "warden0",
        ],
    );
    assert_eq!(rc, 0);
    assert!(
        // 1.0.20250714 create.sh: `info "\nAttempting to create jail: ${NAME}"`.
        out.starts_with("\nAttempting to create jail: mevy-git"),
        "before 1.4 info goes to stdout: {out}"
    );
    let (_, err, rc) = run(&host, "bastille", &["destroy", "-a", "mevy-git"]);
    assert_eq!(rc, 1);
    assert!(err.contains("[ERROR]: Invalid input. Please answer 'y' or 'n'."));
    assert_eq!(
        run(&host, "bastille", &["destroy", "-a", "-y", "mevy-git"]).2,
        0
    );
    assert_eq!(run(&host, "bastille", &["list", "jails"]).0, "");

    let old = host_with_bridge("0.14.20250420");
    assert_eq!(
        run(
            &old,
            "bastille",
            &[
                "create",
                "-B",
                "mevy-git",
                "14.2-RELEASE",
                "10.0.1.2/24",
                "warden0"
            ]
        )
        .2,
        0
    );
    assert_eq!(
        run(&old, "bastille", &["list"]).0,
        "   JID  IP Address      Hostname                      Path\n     1                  mevy-git                      mevy-git\n"
    );
    let all = run(&old, "bastille", &["list", "all"]).0;
    assert!(
        all.starts_with(" JID  Boot  Prio  State  IP Address  Published Ports  Hostname  Release"),
        "{all}"
    );
}

#[test]
fn pkg_sysrc_service_inside_a_jail() {
    let host = host_with_bridge("1.4.4");
    run(
        &host,
        "bastille",
        &[
            "create",
            "-B",
            "-g",
            "10.0.1.1",
            "mevycms",
            "14.2-RELEASE",
            "10.0.1.3/24",
            "warden0",
        ],
    );
    let (out, _, rc) = run(
        &host,
        "bastille",
        &["pkg", "-y", "mevycms", "install", "-y", "nginx", "git"],
    );
    assert_eq!(rc, 0);
    assert!(
        out.contains("[mevycms] [1/2] Installing nginx-1.0..."),
        "{out}"
    );
    assert_eq!(
        run(&host, "bastille", &["pkg", "mevycms", "query", "%n"]).0,
        "nginx\ngit\n"
    );
    let (_, err, rc) = run(
        &host,
        "bastille",
        &["pkg", "mevycms", "install", "-y", "nosuchpkg"],
    );
    assert_eq!(rc, 1);
    assert!(
        err.contains("No packages available to install matching 'nosuchpkg'")
            && err.contains("[ERROR]: Command failed on 1 jails."),
        "{err}"
    );
    assert_eq!(run(&host, "bastille", &["service", "mevycms", "nginx", "start"]).0, "Cannot 'start' nginx. Set nginx_enable to YES in /etc/rc.conf or use 'onestart' instead of 'start'.\n");
    assert_eq!(
        run(&host, "bastille", &["sysrc", "mevycms", "nginx_enable=YES"]).0,
        "nginx_enable:  -> YES\n"
    );
    assert_eq!(
        run(&host, "bastille", &["service", "mevycms", "nginx", "start"]).0,
        "Starting nginx.\n"
    );
    assert_eq!(
        run(
            &host,
            "bastille",
            &["service", "mevycms", "nginx", "status"]
        )
        .2,
        0
    );
    // Restarting the jail starts enabled services again.
    run(&host, "bastille", &["restart", "mevycms"]);
    assert_eq!(
        run(
            &host,
            "bastille",
            &["service", "mevycms", "nginx", "status"]
        )
        .2,
        0
    );
    run(&host, "bastille", &["stop", "mevycms"]);
    assert_eq!(
        run(
            &host,
            "bastille",
            &["pkg", "mevycms", "install", "-y", "git"]
        ),
        (
            String::new(),
            "\n[mevycms]:\nJail is not running.\nUse [-a|--auto] to auto-start the jail.\n".into(),
            0
        )
    );
}

#[test]
fn missing_release_and_bridge() {
    let host = SimHost::new();
    let (_, err, rc) = run(
        &host,
        "bastille",
        &[
            "create",
            "-B",
            "x",
            "14.2-RELEASE",
            "10.0.1.2/24",
            "warden0",
        ],
    );
    assert_eq!(rc, 1);
    assert!(
        err.contains("[ERROR]: Interface is not a bridge: warden0"),
        "{err}"
    );
    host.tool("ifconfig", &["bridge0", "create", "name", "warden0", "up"]);
    let (_, err, _) = run(
        &host,
        "bastille",
        &[
            "create",
            "-B",
            "x",
            "14.2-RELEASE",
            "10.0.1.2/24",
            "warden0",
        ],
    );
    assert!(
        err.contains("[ERROR]: Release must be bootstrapped first.\nSee 'bastille bootstrap'."),
        "{err}"
    );
    assert_eq!(
        run(&host, "bastille", &["-v"]),
        (String::new(), "1.4.4\n".into(), 0)
    );
}

// ---- Fixtures: tests/fixtures/bastille/<release>/*.txt, outputs and files of the real
// ---- scripts at that tag (each file's header names its source). Format:
//   `# …`            comment / source
//   `> tool args`    setup, output not checked
//   `$ tool args`    checked; then optional `stdout:`/`stderr:` blocks (exact), `stdout~:` /
//                    `stderr~:` blocks (each line must be one of the output's lines), `rc: N`
//   `file: PATH`     the file's content must be the block; `absent: PATH` must not exist
//   block lines start with `|`; `{root}` is the simulated host's root; `{any}` in a line
//   matches any text.

#[derive(Default)]
struct Check {
    argv: Vec<String>,
    stdout: Option<(bool, Vec<String>)>,
    stderr: Option<(bool, Vec<String>)>,
    rc: Option<i32>,
}

fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("{any}").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let mut rest = line;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

fn compare(what: &str, exact: bool, want: &[String], have: &str) {
    let have_lines: Vec<&str> = have.lines().collect();
    if exact {
        assert_eq!(
            have_lines.len(),
            want.len(),
            "{what}: line count differs\nwant:\n{}\nhave:\n{have}",
            want.join("\n")
        );
        for (w, h) in want.iter().zip(&have_lines) {
            assert!(
                line_matches(w, h),
                "{what}: {h:?} does not match {w:?}\nhave:\n{have}"
            );
        }
    } else {
        for w in want {
            assert!(
                have_lines.iter().any(|h| line_matches(w, h)),
                "{what}: no line matches {w:?}\nhave:\n{have}"
            );
        }
    }
}

fn run_fixture(version: &str, path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let host = SimHost::new();
    std::fs::write(host.path("/sim/bastille.version"), version).unwrap();
    let root = host.root.display().to_string();
    let name = format!("{version}/{}", path.file_name().unwrap().to_string_lossy());
    let mut lines = text.lines().peekable();
    let block = |lines: &mut std::iter::Peekable<std::str::Lines>| -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = lines.peek() {
            let Some(rest) = l.strip_prefix('|') else {
                break;
            };
            out.push(rest.replace("{root}", &root));
            lines.next();
        }
        out
    };
    let mut pending: Option<Check> = None;
    let finish = |check: Option<Check>| {
        let Some(c) = check else { return };
        let args: Vec<&str> = c.argv[1..].iter().map(String::as_str).collect();
        let (out, err, rc) = run(&host, &c.argv[0], &args);
        let what = format!("{name}: $ {}", c.argv.join(" "));
        if let Some((exact, want)) = &c.stdout {
            compare(&format!("{what} (stdout)"), *exact, want, &out);
        }
        if let Some((exact, want)) = &c.stderr {
            compare(&format!("{what} (stderr)"), *exact, want, &err);
        }
        if let Some(want) = c.rc {
            assert_eq!(
                rc, want,
                "{what}: exit code\nstdout:\n{out}\nstderr:\n{err}"
            );
        }
    };
    while let Some(line) = lines.next() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("> ") {
            finish(pending.take());
            let argv: Vec<&str> = cmd.split_whitespace().collect();
            run(&host, argv[0], &argv[1..]);
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            finish(pending.take());
            pending = Some(Check {
                argv: cmd.split_whitespace().map(String::from).collect(),
                ..Check::default()
            });
        } else if let Some(kind) = line.strip_suffix(':').or_else(|| line.strip_suffix(":~")) {
            let c = pending
                .as_mut()
                .unwrap_or_else(|| panic!("{name}: {line} outside a check"));
            let (stream, exact) = match kind {
                "stdout" => ("stdout", true),
                "stderr" => ("stderr", true),
                "stdout~" => ("stdout", false),
                "stderr~" => ("stderr", false),
                other => panic!("{name}: unknown block {other}"),
            };
            let want = block(&mut lines);
            if stream == "stdout" {
                c.stdout = Some((exact, want));
            } else {
                c.stderr = Some((exact, want));
            }
        } else if let Some(rc) = line.strip_prefix("rc: ") {
            pending.as_mut().expect("rc outside a check").rc = Some(rc.trim().parse().unwrap());
        } else if let Some(file) = line.strip_prefix("file: ") {
            finish(pending.take());
            let want = block(&mut lines);
            let have = std::fs::read_to_string(host.path(file.trim()))
                .unwrap_or_else(|e| panic!("{name}: cannot read {file}: {e}"));
            compare(&format!("{name}: file {file}"), true, &want, &have);
        } else if let Some(file) = line.strip_prefix("absent: ") {
            finish(pending.take());
            assert!(!host.path(file.trim()).exists(), "{name}: {file} exists");
        } else {
            panic!("{name}: cannot read fixture line {line:?}");
        }
    }
    finish(pending.take());
}

/// Every fixture of every recorded release holds the simulator to the real scripts.
#[test]
fn simulator_matches_every_recorded_bastille_release() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bastille");
    let mut count = 0;
    let mut versions: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    versions.sort_by_key(|e| e.file_name());
    for v in versions {
        let version = v.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(v.path()).unwrap().flatten().collect();
        files.sort_by_key(|e| e.file_name());
        for f in files {
            run_fixture(&version, &f.path());
            count += 1;
        }
    }
    assert!(count >= 11, "only {count} fixtures found");
}
