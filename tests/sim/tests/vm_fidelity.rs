//! The simulated vm-bhyve against what vm-bhyve's sources say (docs/vm-bhyve-facts.md) and the
//! `vm list` layouts recorded in tests/fixtures/vm/ (rendered from lib/vm-core `core::list`'s
//! printf format through FreeBSD column(1)'s `maketbl`; see the fixtures' README).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use warden_sim::host::SimHost;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/vm")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn bhyve(version: &str) -> SimHost {
    let host = SimHost::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bhyve_host.sh");
    let out = Command::new(script)
        .arg(&host.root)
        .arg(&host.bin)
        .arg(version)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    host
}

fn vm(host: &SimHost, args: &[&str]) -> (String, String, i32) {
    let out = host.tool("vm", args);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Cells of a `vm list` table, cut at the header's column offsets.
fn cells(text: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|(i, c)| *c != ' ' && (*i == 0 || header.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    std::iter::once(header)
        .chain(lines)
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let end = starts
                        .get(k + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line[(*s).min(end)..end].trim().to_string()
                })
                .collect()
        })
        .collect()
}

#[test]
fn column_reproduces_the_recorded_list_layouts() {
    for name in ["list-1.6.txt", "list-1.7.txt", "list-1.8-devel.txt"] {
        let text = fixture(name);
        let rows: Vec<String> = cells(&text).iter().map(|r| r.join("^")).collect();
        assert_eq!(warden_sim::vm::column(&rows), text, "{name}");
    }
}

fn wait_state(host: &SimHost, name: &str, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (out, _, _) = vm(host, &["list"]);
        if out
            .lines()
            .any(|l| l.starts_with(&format!("{name} ")) && l.contains(prefix))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never {prefix}: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The fixtures' guests, made on the simulated host; `vm list` must show the same cells
/// (pids aside).
fn live_list(version: &str, fixture_name: &str) {
    let host = bhyve(version);
    let conf = |n: &str| host.path(&format!("/vm/{n}/{n}.conf"));
    let ssd = host.path("/ssd");
    std::fs::create_dir_all(&ssd).unwrap();
    let system = host.path("/vm/.config/system.conf");
    let mut text = std::fs::read_to_string(&system).unwrap();
    text.push_str(&format!(
        "datastore_list=\"ssd\"\npath_ssd=\"{}\"\n",
        ssd.display()
    ));
    std::fs::write(&system, text).unwrap();
    host.tool("sysrc", &["vm_list=agent01 db-vm.test"]);
    let guests: &[(&str, &[&str])] = &[
        ("agent01", &["-c", "2", "-m", "2G"]),
        ("agent02", &["-c", "1", "-m", "512M"]),
        ("old", &[]),
        ("sleepy", &["-m", "1G"]),
        ("db-vm.test", &["-d", "ssd", "-c", "4", "-m", "8G"]),
    ];
    let with_sleepy = fixture(fixture_name).contains("sleepy");
    for (name, opts) in guests {
        if *name == "sleepy" && !with_sleepy {
            continue;
        }
        let mut args = vec!["create"];
        args.extend_from_slice(opts);
        args.push(name);
        assert_eq!(vm(&host, &args).2, 0, "create {name}");
    }
    let edit = |n: &str, line: &str| {
        let path = if n == "db-vm.test" {
            ssd.join("db-vm.test/db-vm.test.conf")
        } else {
            conf(n)
        };
        let mut t = std::fs::read_to_string(&path).unwrap();
        t.push_str(line);
        std::fs::write(&path, t).unwrap();
    };
    std::fs::write(conf("old").with_file_name("run.lock"), "bhyve2\n").unwrap();
    let old = std::fs::read_to_string(conf("old"))
        .unwrap()
        .replace("loader=\"bhyveload\"", "loader=\"grub\"");
    std::fs::write(conf("old"), old).unwrap();
    let db = ssd.join("db-vm.test/db-vm.test.conf");
    let t = std::fs::read_to_string(&db)
        .unwrap()
        .replace("loader=\"bhyveload\"", "loader=\"uefi\"");
    std::fs::write(&db, t).unwrap();
    if with_sleepy {
        std::fs::write(conf("sleepy").with_file_name("sleepy.save"), "").unwrap();
    }
    if version == "1.8-devel" {
        edit("agent01", "tags=\"warden agent\"\n");
        edit("agent02", "tags=\"warden\"\n");
    }
    for n in ["agent01", "db-vm.test"] {
        assert_eq!(vm(&host, &["start", n]).2, 0);
        wait_state(&host, n, "Running (");
    }
    let (out, _, rc) = vm(&host, &["list"]);
    assert_eq!(rc, 0);
    let normalize = |rows: Vec<Vec<String>>| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| {
                        if c.starts_with("Running (") {
                            "Running (pid)".into()
                        } else {
                            c
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let mut want = normalize(cells(&fixture(fixture_name)));
    // the simulator starts guests without a graphics console
    for row in &mut want {
        if row[5] == "0.0.0.0:5900" {
            row[5] = "-".into();
        }
    }
    assert_eq!(normalize(cells(&out)), want, "{version}:\n{out}");
}

#[test]
fn list_layout_1_6() {
    live_list("1.6-devel", "list-1.6.txt");
}

#[test]
fn list_layout_1_7_with_suspended() {
    live_list("1.7.5", "list-1.7.txt");
}

#[test]
fn list_layout_1_8_devel_with_tags() {
    live_list("1.8-devel", "list-1.8-devel.txt");
}

#[test]
fn versions_print_as_vm_base_sets_them() {
    for (v, want) in [
        ("1.6-devel", "v1.6-devel"),
        ("1.7.2", "v1.7.2"),
        ("1.8-devel", "v1.8-devel"),
    ] {
        let host = bhyve(v);
        assert_eq!(
            vm(&host, &["version"]).0,
            format!("vm-bhyve: Bhyve virtual machine management {want}\n")
        );
    }
}

/// v1.7.5 parses -n before creating anything and refuses `gateway=`; 1.7.4 ignores it and
/// writes no gateway; 1.6 reads `gateway` into `gateway4:` and always renames the NIC to eth0.
#[test]
fn netconfig_keys_per_version() {
    let host = bhyve("1.7.5");
    let (_, err, rc) = vm(
        &host,
        &[
            "create",
            "-C",
            "-n",
            "ip=10.0.0.5/24;gateway=10.0.0.1",
            "g1",
        ],
    );
    assert_eq!(
        (rc, err.as_str()),
        (
            1,
            "/usr/local/sbin/vm: ERROR: invalid netconfig option - 'gateway'\n"
        )
    );
    assert!(!host.path("/vm/g1").exists(), "nothing created");

    let host = bhyve("1.7.4");
    assert_eq!(
        vm(
            &host,
            &[
                "create",
                "-C",
                "-n",
                "ip=10.0.0.5/24;gateway=10.0.0.1;searchdomains=lan;nameservers=1.1.1.1",
                "g1"
            ]
        )
        .2,
        0
    );
    let nc = host.read("/vm/g1/.cloud-init/network-config");
    assert!(
        nc.contains("set-name: eth0") && nc.contains("addresses: [10.0.0.5/24]"),
        "{nc}"
    );
    assert!(
        !nc.contains("10.0.0.1") && !nc.contains("search:"),
        "gateway= ignored, search domains lost: {nc}"
    );
    assert!(
        !host.path("/vm/g1/seed.iso").exists(),
        "1.7 builds seed.iso at the first start"
    );

    let host = bhyve("1.6-devel");
    assert_eq!(
        vm(
            &host,
            &[
                "create",
                "-C",
                "-n",
                "ip=10.0.0.5/24;gateway=10.0.0.1;nameservers=1.1.1.1",
                "g1"
            ]
        )
        .2,
        0
    );
    let nc = host.read("/vm/g1/.cloud-init/network-config");
    assert!(
        nc.contains("    set-name: eth0\n")
            && nc.contains("    addresses:\n      - 10.0.0.5/24\n")
            && nc.contains("    gateway4: 10.0.0.1\n"),
        "{nc}"
    );
    assert!(
        host.path("/vm/g1/seed.iso").exists(),
        "1.6 builds seed.iso in vm create"
    );
    let (out, err, rc) = vm(&host, &["create", "-C", "-u", "/etc/rc.conf", "g2"]);
    assert_eq!(rc, 1, "no -u before 1.7.1: {out}{err}");
    assert!(
        err.contains("Illegal option -u")
            && out.starts_with(
                "vm-bhyve: Bhyve virtual machine management v1.6-devel\nUsage: vm ..."
            )
    );
}

#[test]
fn key_files_and_user_data_per_version() {
    let host = bhyve("1.7.5");
    let keys = host.path("/tmp/keys");
    std::fs::write(
        &keys,
        "# mine\nssh-ed25519 AAAA one@h\n\nssh-ed25519 BBBB two@h\n",
    )
    .unwrap();
    let keys = keys.to_string_lossy().into_owned();
    assert_eq!(vm(&host, &["create", "-C", "-k", &keys, "g1"]).2, 0);
    assert_eq!(
        host.read("/vm/g1/.cloud-init/user-data"),
        "#cloud-config\nresize_rootfs: True\nmanage_etc_hosts: localhost\nssh_authorized_keys:\n  - ssh-ed25519 AAAA one@h\n  - ssh-ed25519 BBBB two@h\n"
    );
    let (_, err, rc) = vm(&host, &["create", "-k", &keys, "g2"]);
    assert_eq!((rc, err.as_str()), (1, "/usr/local/sbin/vm: ERROR: cloud-init is required for injecting public key. Use -C to enable it.\n"));
    let (_, err, rc) = vm(&host, &["create", "-C", "-k", &keys, "-u", &keys, "g2"]);
    assert_eq!(
        (rc, err.as_str()),
        (
            1,
            "/usr/local/sbin/vm: ERROR: -u and -k are mutually exclusive; use one or the other\n"
        )
    );
    let conf = host.read("/vm/g1/g1.conf");
    assert!(
        conf.contains("disk1_type=\"ahci-cd\"\ndisk1_name=\"seed.iso\"\ndisk1_dev=\"file\"\n"),
        "{conf}"
    );
    assert!(conf.contains("network0_mac=\"58:9c:fc:0"), "{conf}");
}

/// What vm-bhyve does not check: a bad size fails after the guest exists; `-m lots` is stored,
/// `vm start` exits 0 and the guest never runs.
#[test]
fn unchecked_values() {
    let host = bhyve("1.7.5");
    let (_, err, rc) = vm(&host, &["create", "-s", "lots", "g1"]);
    assert_eq!(
        (rc, err.as_str()),
        (
            1,
            "/usr/local/sbin/vm: ERROR: failed to create sparse file for disk image\n"
        )
    );
    assert!(
        host.path("/vm/g1/g1.conf").exists(),
        "the half-made guest is left behind"
    );

    assert_eq!(vm(&host, &["create", "-m", "lots", "g2"]).2, 0);
    let (out, _, rc) = vm(&host, &["start", "g2"]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        format!(
            "Starting g2\n  * found guest in {}\n  * booting...\n",
            host.p("/vm/g2")
        )
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.path("/vm/g2/vm-bhyve.log").exists()
        || !host.read("/vm/g2/vm-bhyve.log").contains("stopped")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(host
        .read("/vm/g2/vm-bhyve.log")
        .contains(": fatal; loader returned error 64\n"));
    assert!(vm(&host, &["list"]).0.contains("Stopped"));
}

#[test]
fn start_and_stop_return_before_the_guest_is_up_or_down() {
    let host = bhyve("1.7.5");
    std::fs::write(host.path("/sim/vm-boot-ms"), "600").unwrap();
    std::fs::write(host.path("/sim/vm-shutdown-ms"), "600").unwrap();
    assert_eq!(vm(&host, &["create", "g1"]).2, 0);
    assert_eq!(vm(&host, &["start", "g1"]).2, 0);
    assert!(!vm(&host, &["list"]).0.contains("Running ("), "not up yet");
    wait_state(&host, "g1", "Running (");
    let (out, _, rc) = vm(&host, &["stop", "g1"]);
    assert_eq!((out.as_str(), rc), ("Sending ACPI shutdown to g1\n", 0));
    assert!(vm(&host, &["list"]).0.contains("Running ("), "not down yet");
    wait_state(&host, "g1", "Stopped");
    let (_, err, rc) = vm(&host, &["stop", "g1"]);
    assert_eq!(
        (err.as_str(), rc),
        (
            "/usr/local/sbin/vm: WARNING: g1 doesn't appear to be a running virtual machine\n",
            0
        )
    );
    let (_, err, rc) = vm(&host, &["poweroff", "-f", "g1"]);
    assert_eq!(
        (err.as_str(), rc),
        (
            "/usr/local/sbin/vm: ERROR: g1 doesn't appear to be a running virtual machine\n",
            1
        )
    );
}

/// `-f` only counts before the name; an unanswered prompt (stdin at EOF) counts as yes.
#[test]
fn destroy_flags_and_the_prompt() {
    let host = bhyve("1.7.5");
    assert_eq!(vm(&host, &["create", "g1"]).2, 0);
    assert_eq!(vm(&host, &["start", "g1"]).2, 0);
    wait_state(&host, "g1", "Running (");
    let (_, err, rc) = vm(&host, &["destroy", "-f", "g1"]);
    assert_eq!(rc, 1, "a running guest is refused");
    assert!(
        err.contains("g1 appears to be running on sim1 (locked)"),
        "{err}"
    );
    assert_eq!(vm(&host, &["poweroff", "-f", "g1"]).2, 0);
    wait_state(&host, "g1", "Stopped");
    let (out, _, rc) = vm(&host, &["destroy", "g1", "-f"]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "Are you sure you want to completely remove this virtual machine (y/n)? "
    );
    assert!(!host.path("/vm/g1").exists(), "EOF on stdin answered yes");
}

/// A started guest's first boot applies the seed the way nuageinit does.
#[test]
fn first_boot_applies_the_seed_like_nuageinit() {
    let host = bhyve("1.7.5");
    let ud = host.path("/tmp/ud");
    std::fs::write(&ud, "#cloud-config\nusers:\n  - name: admin\n    ssh_authorized_keys:\n      - ssh-ed25519 AAAA a@b\n    sudo: ALL=(ALL) NOPASSWD:ALL\n").unwrap();
    let ud = ud.to_string_lossy().into_owned();
    assert_eq!(
        vm(
            &host,
            &[
                "create",
                "-C",
                "-u",
                &ud,
                "-n",
                "ip=10.0.0.7/24;gateway4=10.0.0.1;hostname=agent7",
                "g1"
            ]
        )
        .2,
        0
    );
    assert_eq!(vm(&host, &["start", "g1"]).2, 0);
    let booted = host.path("/vm/g1/sim-guest/sim/booted");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !booted.exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let g = |p: &str| std::fs::read_to_string(host.path(&format!("/vm/g1/sim-guest{p}"))).unwrap();
    assert_eq!(g("/etc/rc.conf.d/hostname"), "hostname=\"agent7\"\n");
    assert_eq!(
        g("/etc/rc.conf.d/network"),
        "ifconfig_vtnet0_name=eth0\nifconfig_eth0=\"inet 10.0.0.7/24\"\n"
    );
    // vm-bhyve 1.7 writes the gateway as a route, which nuageinit does not read
    assert_eq!(g("/etc/rc.conf.d/routing"), "");
    assert_eq!(
        g("/usr/local/etc/sudoers.d/90-nuageinit-users"),
        "admin ALL=(ALL) NOPASSWD:ALL\n"
    );
    assert_eq!(
        g("/home/admin/.ssh/authorized_keys"),
        "ssh-ed25519 AAAA a@b\n"
    );
    assert!(
        !g("/etc/passwd").contains("freebsd:"),
        "users without `default`: no default user"
    );
    let ifs = g("/sim/ifconfig.json");
    assert!(
        ifs.contains("\"eth0\"") && ifs.contains("10.0.0.7"),
        "{ifs}"
    );
}
