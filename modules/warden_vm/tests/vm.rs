//! warden_vm against the simulated bhyve host (tests/sim vm-bhyve, per version): apply → check
//! mode with other values (no mutating call) → idempotent re-run, each followed by a read of
//! the host and of the guest the seed produced.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use warden_sim::host::{with, ModuleRun, SimHost};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBhvVMtest warden@controller";

fn module() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden_vm"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A simulated host set up as a bhyve host (tests/bhyve_host.sh), guests answering SSH on a
/// free loopback port.
fn bhyve(version: &str) -> SimHost {
    let host = SimHost::new();
    let out = Command::new(repo().join("tests/bhyve_host.sh"))
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

fn base(host: &SimHost) -> Value {
    host.args(json!({
        "name": "vm01",
        "state": "running",
        "cpus": 2,
        "memory": "1G",
        "tags": ["warden"],
        "user": "admin",
        "authorized_keys": [KEY],
        "address": "10.0.0.11/24",
        "gateway": "10.0.0.1",
        "nameservers": ["10.0.0.1"],
        "wait_timeout": "20",
        "stop_timeout": "10",
    }))
}

fn run(host: &SimHost, args: &Value, check: bool) -> ModuleRun {
    let mut args = args.clone();
    args["_ansible_check_mode"] = json!(check);
    args["_ansible_diff"] = json!(true);
    host.run_module(module().to_str().unwrap(), &args)
}

fn guest(host: &SimHost, name: &str) -> PathBuf {
    host.path(&format!("/vm/{name}/sim-guest"))
}

/// A running guest still boots: wait (bounded) for its first boot to have written `file`.
fn booted(host: &SimHost, name: &str, file: &str) -> PathBuf {
    let path = guest(host, name).join(file);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    path
}

fn vm_list(host: &SimHost) -> String {
    String::from_utf8_lossy(&host.tool("vm", &["list"]).stdout).into_owned()
}

fn in_three(version: &str) {
    let host = bhyve(version);
    host.clear_calls();
    let first = run(&host, &base(&host), false);
    assert_eq!(first.code, 0, "{version}: {}", first.result);
    assert_eq!(first.result["changed"], true);
    assert_eq!(first.result["created"], true);
    assert_eq!(first.result["address"], "10.0.0.11");
    let commands: Vec<String> = serde_json::from_value(first.result["commands"].clone()).unwrap();
    assert!(
        commands[0].contains(" create ") && commands.last().unwrap().ends_with("start vm01"),
        "{commands:?}"
    );
    assert!(vm_list(&host).contains("Running ("), "{}", vm_list(&host));

    // What the guest's first boot made of the seed (nuageinit).
    let g = guest(&host, "vm01");
    booted(&host, "vm01", "sim/booted");
    let network = std::fs::read_to_string(g.join("etc/rc.conf.d/network")).unwrap();
    assert!(
        network.contains("ifconfig_vtnet0=\"inet 10.0.0.11/24\""),
        "{version}: {network}"
    );
    assert!(
        !network.contains("eth0"),
        "{version}: the NIC keeps its name: {network}"
    );
    let routing = std::fs::read_to_string(g.join("etc/rc.conf.d/routing")).unwrap();
    assert_eq!(routing, "defaultrouter=\"10.0.0.1\"\n", "{version}");
    let keys = std::fs::read_to_string(g.join("home/admin/.ssh/authorized_keys")).unwrap();
    assert_eq!(keys, format!("{KEY}\n"), "{version}");
    let doas = std::fs::read_to_string(g.join("usr/local/etc/doas.conf")).unwrap();
    assert_eq!(doas, "permit nopass admin\n", "{version}");
    let conf = host.read("/vm/vm01/vm01.conf");
    assert!(
        conf.contains("tags=\"warden\"")
            && conf.contains("cpu=\"2\"")
            && conf.contains("memory=\"1G\""),
        "{conf}"
    );
    // the temporary seed inputs are gone
    assert!(!std::fs::read_dir(host.path("/vm"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".warden-")));

    // Check mode with other values: predicted, nothing mutating runs.
    host.clear_calls();
    let before = host.snapshot();
    let check = run(
        &host,
        &with(base(&host), json!({"cpus": 4, "tags": ["warden", "agent"]})),
        true,
    );
    assert_eq!(check.code, 0, "{}", check.result);
    assert_eq!(check.result["changed"], true);
    assert_eq!(check.result["restart_pending"], true);
    let diff = check.result["diff"][0]["after"].as_str().unwrap();
    assert!(
        diff.contains("cpu=\"4\"") && diff.contains("tags=\"warden agent\""),
        "{diff}"
    );
    assert_eq!(host.mutating_calls(), Vec::<String>::new());
    assert_eq!(host.snapshot(), before);

    // Idempotent.
    host.clear_calls();
    let again = run(&host, &base(&host), false);
    assert_eq!(again.code, 0, "{}", again.result);
    assert_eq!(again.result["changed"], false, "{}", again.result);
    assert_eq!(host.mutating_calls(), Vec::<String>::new());
}

#[test]
fn vm_bhyve_1_6_create_seed_start_idempotent() {
    in_three("1.6-devel");
}

#[test]
fn vm_bhyve_1_7_0_create_seed_start_idempotent() {
    in_three("1.7.0");
}

#[test]
fn vm_bhyve_1_7_5_create_seed_start_idempotent() {
    in_three("1.7.5");
}

#[test]
fn vm_bhyve_1_8_devel_create_seed_start_idempotent() {
    in_three("1.8-devel");
    let host = bhyve("1.8-devel");
    run(&host, &base(&host), false);
    assert!(
        vm_list(&host).lines().nth(1).unwrap().ends_with("warden"),
        "{}",
        vm_list(&host)
    );
}

#[test]
fn cpus_of_a_running_guest_need_restart_true() {
    let host = bhyve("1.7.5");
    assert_eq!(run(&host, &base(&host), false).code, 0);
    let changed = run(&host, &with(base(&host), json!({"cpus": 3})), false);
    assert_eq!(changed.result["changed"], true, "{}", changed.result);
    assert_eq!(changed.result["restart_pending"], true);
    assert!(changed.result["warnings"][0]
        .as_str()
        .unwrap()
        .contains("restart: true"));
    // the pending restart is seen again (from the guest log) and changes nothing
    let again = run(&host, &with(base(&host), json!({"cpus": 3})), false);
    assert_eq!(
        (
            again.result["changed"].clone(),
            again.result["restart_pending"].clone()
        ),
        (json!(false), json!(true))
    );
    let restarted = run(
        &host,
        &with(base(&host), json!({"cpus": 3, "restart": true})),
        false,
    );
    assert_eq!(restarted.code, 0, "{}", restarted.result);
    assert_eq!(restarted.result["restarted"], true);
    let log = host.read("/vm/vm01/vm-bhyve.log");
    assert!(
        log.trim_end()
            .lines()
            .rev()
            .take(20)
            .any(|l| l.ends_with("[cpu: 3]")),
        "{log}"
    );
    let converged = run(&host, &with(base(&host), json!({"cpus": 3})), false);
    assert_eq!(
        (
            converged.result["changed"].clone(),
            converged.result["restart_pending"].clone()
        ),
        (json!(false), json!(false))
    );
}

#[test]
fn stop_and_absent_wait_and_leave_other_guests_alone() {
    let host = bhyve("1.7.5");
    assert_eq!(run(&host, &base(&host), false).code, 0);
    let other = with(
        base(&host),
        json!({"name": "vm02", "address": "10.0.0.12/24"}),
    );
    assert_eq!(run(&host, &other, false).code, 0);
    let stopped = run(
        &host,
        &with(base(&host), json!({"state": "stopped"})),
        false,
    );
    assert_eq!(stopped.code, 0, "{}", stopped.result);
    assert!(
        vm_list(&host).contains("vm01  default    bhyveload  2    1G      -    No    Stopped"),
        "{}",
        vm_list(&host)
    );
    let gone = run(
        &host,
        &host.args(json!({"name": "vm01", "state": "absent"})),
        false,
    );
    assert_eq!(gone.code, 0, "{}", gone.result);
    assert!(!host.path("/vm/vm01").exists());
    let list = vm_list(&host);
    assert!(
        list.contains("vm02") && list.contains("Running ("),
        "{list}"
    );
    let again = run(
        &host,
        &host.args(json!({"name": "vm01", "state": "absent"})),
        false,
    );
    assert_eq!(again.result["changed"], false);
    // absent on a running guest: stopped first, then destroyed
    let running_gone = run(
        &host,
        &host.args(json!({"name": "vm02", "state": "absent"})),
        false,
    );
    assert_eq!(running_gone.code, 0, "{}", running_gone.result);
    let commands: Vec<String> =
        serde_json::from_value(running_gone.result["commands"].clone()).unwrap();
    assert!(
        commands[0].ends_with("vm stop vm02") && commands[1].ends_with("vm destroy -f vm02"),
        "{commands:?}"
    );
}

/// Regression: vm-bhyve stores `-m lots` and the guest silently never runs; warden refuses it
/// before calling vm-bhyve, and a conf edited by hand to say so fails the start within the
/// wait, naming the guest log's line.
#[test]
fn memory_lots_is_refused_and_a_guest_that_never_runs_fails_fast() {
    let host = bhyve("1.7.5");
    host.clear_calls();
    let bad = run(
        &host,
        &with(base(&host), json!({"memory": "lots", "cpus": 0})),
        false,
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.msg().contains("memory \"lots\"")
            && bad.msg().contains("cpus must be between 1 and 1024"),
        "{}",
        bad.msg()
    );
    assert!(host.calls().is_empty(), "nothing ran: {:?}", host.calls());

    let created = run(
        &host,
        &with(base(&host), json!({"state": "present"})),
        false,
    );
    assert_eq!(created.code, 0, "{}", created.result);
    let conf = host
        .read("/vm/vm01/vm01.conf")
        .replace("memory=\"1G\"", "memory=\"lots\"");
    std::fs::write(host.path("/vm/vm01/vm01.conf"), conf).unwrap();
    let started = std::time::Instant::now();
    let never = run(
        &host,
        &host.args(json!({"name": "vm01", "state": "running", "wait_timeout": "60"})),
        false,
    );
    assert_eq!(never.code, 1, "{}", never.result);
    assert!(
        never.msg().contains("fatal; loader returned error 64"),
        "{}",
        never.msg()
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "failed early, not at the deadline"
    );
}

#[test]
fn a_missing_switch_template_or_image_changes_nothing() {
    let host = bhyve("1.7.5");
    host.clear_calls();
    let before = host.snapshot();
    let bad = run(
        &host,
        &with(
            base(&host),
            json!({"switch": "nope", "template": "linux", "image": "none.raw", "datastore": "ssd"}),
        ),
        false,
    );
    assert_eq!(bad.code, 1);
    for needle in [
        "switch nope does not exist",
        "template linux does not exist",
        "datastore ssd does not exist",
        "image none.raw",
    ] {
        assert!(bad.msg().contains(needle), "{needle}: {}", bad.msg());
    }
    assert_eq!(host.snapshot(), before);
    assert_eq!(host.mutating_calls(), Vec::<String>::new());
}
