//! `freebsd-sim boot` against what FreeBSD's own rc.d/netif and network.subr made of the
//! same rc.conf (tests/fixtures/netif/, with its source).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::fs;

use serde_json::Value;
use warden_sim::host::SimHost;

fn lines(case: &Value, key: &str) -> Vec<String> {
    case[key]
        .as_array()
        .map(|a| a.iter().map(|l| l.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// warden0's addresses as `A/P`, in the order ifconfig prints them.
fn addresses(host: &SimHost) -> Vec<String> {
    let out = host.tool("ifconfig", &["warden0"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("\tinet "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let mask = u32::from_str_radix(words[2].trim_start_matches("0x"), 16).unwrap();
            format!("{}/{}", words[0], mask.count_ones())
        })
        .collect()
}

#[test]
fn boot_follows_netif_for_every_recorded_rc_conf() {
    let fixture: Value = serde_json::from_str(
        &fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/netif/boot-cases.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let host = SimHost::new();
        let mut rc_conf = host.read("/etc/rc.conf");
        rc_conf.push_str("cloned_interfaces=\"bridge0\"\nifconfig_bridge0_name=\"warden0\"\n");
        for line in lines(case, "rc_conf") {
            rc_conf.push_str(&line.replace("em0", "vtnet0"));
            rc_conf.push('\n');
        }
        fs::write(host.path("/etc/rc.conf"), rc_conf).unwrap();
        let local = lines(case, "rc_conf_local");
        if !local.is_empty() {
            fs::write(host.path("/etc/rc.conf.local"), local.join("\n") + "\n").unwrap();
        }
        let console = host.boot();
        let want = lines(case, "warden0");
        let got = addresses(&host);
        if case["includes"].as_bool() == Some(true) {
            assert!(
                want.iter().all(|w| got.contains(w)),
                "{name}: {got:?}\n{console}"
            );
        } else {
            assert_eq!(got, want, "{name}\n{console}");
        }
        for line in lines(case, "console") {
            let line = line.replace("em0", "vtnet0");
            assert!(
                console.lines().any(|l| l == line),
                "{name}: no line {line:?} in\n{console}"
            );
        }
    }
}
