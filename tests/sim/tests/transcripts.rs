//! The simulator against the transcript fixtures of tests/fixtures/{kld,pfctl,ifconfig}
//! (each file names the FreeBSD sources its expected output follows).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

mod common;

use warden_sim::host::SimHost;

fn check(relative: &str) {
    let host = SimHost::new();
    let problems = common::replay(&host, &common::fixtures().join(relative));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn kld_fresh_host_pf() {
    check("kld/fresh-host-pf.transcript");
}

#[test]
fn pfctl_without_pf_ko_only_n_works() {
    check("pfctl/pf-not-loaded-n-works.transcript");
}

#[test]
fn pfctl_prints_the_warden_isolation_rules() {
    check("pfctl/warden-isolation-rules.transcript");
}

#[test]
fn ifconfig_renamed_bridge_keeps_its_unit() {
    check("ifconfig/renamed-bridge-unit.transcript");
}
