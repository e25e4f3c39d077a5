//! Bounded fuzzing of every parser a module feeds with host output or user files: none may
//! panic on any input, and where a format has a writer, what is written reads back the same.
//! The ifconfig round trip goes through the simulator's independent implementation of
//! ifconfig(8)'s output.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use std::net::Ipv4Addr;
use std::process::Command;

use ipnet::Ipv4Net;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use warden_runtime::rcconf::{RcConf, RcValue};
use warden_runtime::{args, bastille, ifconfig, ipv4, netconf, pfctl, shell, vm_bhyve};

fn config() -> ProptestConfig {
    // Bounded so `make test` stays quick; raise PROPTEST_CASES to fuzz longer.
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512),
        ..ProptestConfig::default()
    }
}

/// Text that looks like the format, mutated: lines of plausible tokens and noise.
fn texty(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => proptest::sample::select(tokens).prop_map(str::to_string),
        1 => "[ -~]{0,12}",
        1 => "[\\t\\n\"'=#\\\\${}()]",
        1 => any::<String>(),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

fn private_net() -> impl Strategy<Value = Ipv4Net> {
    (0u8..=255, 0u8..=255, 1u8..=254, 8u8..=30)
        .prop_map(|(b, c, d, p)| Ipv4Net::new(Ipv4Addr::new(10, b, c, d), p).unwrap())
}

proptest! {
    #![proptest_config(config())]

    // ---- args files -------------------------------------------------------------------

    #[test]
    fn args_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = args::parse_args(&bytes);
    }

    #[test]
    fn args_parser_never_panics_on_json_ish_text(text in texty(&["{", "}", "[", "]", ",", ":", "\"_ansible_check_mode\"",
        "\"_ansible_diff\"", "\"name\"", "true", "null", "1", "\"x\"", "\"_ansible_verbosity\"", "\"_ansible_no_log\""])) {
        let _ = args::parse_args(text.as_bytes());
    }

    #[test]
    fn user_params_come_through_unchanged(params in proptest::collection::btree_map("[a-z][a-z0-9_]{0,12}", any::<String>(), 0..8),
                                          check in any::<bool>()) {
        let mut object: Map<String, Value> = params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        object.insert("_ansible_check_mode".into(), json!(check));
        let parsed = args::parse_args(serde_json::to_string(&object).unwrap().as_bytes()).unwrap();
        let expected: Map<String, Value> = params.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        prop_assert_eq!(parsed.params, expected);
        prop_assert_eq!(parsed.internal.check_mode, check);
    }

    // ---- ifconfig -----------------------------------------------------------------------

    #[test]
    fn ifconfig_parser_never_panics(text in texty(&["warden0: ", "bridge0: ", "flags=8843<UP,BROADCAST,RUNNING>",
        " metric 0 mtu 1500", "\n", "\tinet ", "10.0.0.1", " netmask ", "0xffffff00", " broadcast ", "\tmember: ",
        "\tgroups: bridge", "inet6 fe80::1%lo0 prefixlen 64", "/24", "\tether 58:9c:fc:00:00:01", " vhid 1"])) {
        let _ = ifconfig::parse(&text);
    }

    #[test]
    fn what_the_simulators_ifconfig_prints_parses_back(nets in proptest::collection::btree_set(private_net(), 0..6),
                                                      up in any::<bool>()) {
        let mut state = warden_sim::ifconfig::IfState::initial();
        let run = |state: &mut warden_sim::ifconfig::IfState, args: &[&str]| {
            let out = warden_sim::ifconfig::command(state, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(out.rc, 0, "{args:?}: {}", out.stderr);
            out.stdout
        };
        run(&mut state, &["bridge0", "create"]);
        run(&mut state, &["bridge0", "name", "warden0"]);
        // One address per /24 and distinct networks, as warden itself would configure.
        let mut added: Vec<Ipv4Net> = Vec::new();
        for net in &nets {
            if added.iter().any(|a| ipv4::overlaps(a, net)) || net.addr() == net.network() || net.addr() == net.broadcast() {
                continue;
            }
            run(&mut state, &["warden0", "inet", &net.to_string(), "alias"]);
            added.push(*net);
        }
        if up {
            run(&mut state, &["warden0", "up"]);
        }
        let parsed = ifconfig::parse(&run(&mut state, &["-a"])).unwrap();
        let bridge = parsed.iter().find(|i| i.name == "warden0").unwrap();
        let mut got = bridge.inet.clone();
        got.sort();
        added.sort();
        prop_assert_eq!(got, added);
        prop_assert_eq!(bridge.is_up(), up);
        prop_assert!(bridge.is_bridge());
        prop_assert!(parsed.iter().any(|i| i.name == "vtnet0"));
    }

    #[test]
    fn netmask_parser_never_panics(mask in "(0x)?[0-9a-fA-F]{0,10}|[0-9.]{0,16}") {
        let _ = ipv4::with_netmask(std::net::Ipv4Addr::new(10, 0, 0, 1), &mask);
    }

    // ---- rc.conf --------------------------------------------------------------------------

    #[test]
    fn rc_conf_reader_never_panics(text in texty(&["ifconfig_warden0", "=", "\"", "'", "inet 10.0.0.1/24", "\n", "#",
        "$", "${x}", "`date`", "$(id)", "\\", ";", " ", "cloned_interfaces", "YES", "bridge0"])) {
        let rc = RcConf::parse(&text);
        let _ = rc.get("ifconfig_warden0");
        let _ = rc.with_prefix("ifconfig_");
    }

    #[test]
    fn rc_conf_values_read_back_in_every_quote_style(
        entries in proptest::collection::vec(("[a-z][a-z0-9_]{0,10}", "[ -~]{0,20}", 0u8..3), 1..10)
    ) {
        // Written the way admins (and sysrc) write them: bare, double- or single-quoted.
        let mut text = String::from("# written by hand\n");
        let mut expected = std::collections::BTreeMap::new();
        for (name, value, style) in &entries {
            let line = match style {
                0 if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:,".contains(c)) => format!("{name}={value}"),
                0 | 1 if !value.contains(['"', '\\', '$', '`']) => format!("{name}=\"{value}\""),
                _ if !value.contains('\'') => format!("{name}='{value}'"),
                _ => continue,
            };
            text.push_str(&line);
            text.push('\n');
            expected.insert(name.clone(), value.clone());
        }
        let rc = RcConf::parse(&text);
        for (name, value) in &expected {
            prop_assert_eq!(rc.get(name), Some(&RcValue::Literal(value.clone())), "{}", text);
        }
    }

    #[test]
    fn the_last_assignment_wins(name in "[a-z][a-z0-9_]{0,10}", values in proptest::collection::vec("[a-zA-Z0-9 ._-]{0,12}", 1..5)) {
        let text: String = values.iter().map(|v| format!("{name}=\"{v}\"\n")).collect();
        let rc = RcConf::parse(&text);
        prop_assert_eq!(rc.get(&name), Some(&RcValue::Literal(values.last().unwrap().clone())));
    }

    // ---- rc.conf address values (netconf) -----------------------------------------------------

    #[test]
    fn address_value_parser_never_panics(text in texty(&["inet", " ", "10.0.0.1", "/24", "netmask", "0xffffff00",
        "255.255.255.0", "broadcast", "alias", "up", "DHCP", "inet6", "-"])) {
        let _ = netconf::parts(&text);
    }

    #[test]
    fn address_values_join_and_split_back(nets in proptest::collection::vec(private_net(), 0..4), up in any::<bool>(), dotted in any::<bool>()) {
        let mut parts: Vec<netconf::Part> = nets
            .iter()
            .map(|n| {
                let words = if dotted {
                    vec!["inet".into(), n.addr().to_string(), "netmask".into(), n.netmask().to_string()]
                } else {
                    vec!["inet".into(), format!("{}/{}", n.addr(), n.prefix_len())]
                };
                netconf::Part::Inet { net: *n, words }
            })
            .collect();
        if up {
            parts.push(netconf::Part::Other("up".into()));
        }
        let text = netconf::join(&parts);
        prop_assert_eq!(netconf::parts(&text).unwrap(), parts);
    }

    #[test]
    fn cidr_parser_never_panics_and_round_trips(text in "[0-9./ a-z:]{0,24}", net in private_net()) {
        let _ = ipv4::parse_cidr(&text);
        prop_assert_eq!(ipv4::parse_cidr(&net.to_string()).unwrap(), net);
    }

    // ---- pf.conf ------------------------------------------------------------------------------

    #[test]
    fn pf_conf_readers_never_panic(text in texty(&["ext_if", " = ", "\"vtnet0\"", "\n", "set skip on lo0", "nat on $ext_if",
        "pass", "block", "match", "anchor", "antispoof", "include \"/etc/pf.warden.conf\"", "#", "\\", "{", "}", "table <t>"])) {
        let at = pfctl::include_position(&text);
        prop_assert!(at <= text.lines().count());
        let _ = pfctl::includes(&text, "/etc/pf.warden.conf");
        let _ = pfctl::macro_value(&text, "ext_if", at);
        let _ = pfctl::parse_enabled(&text);
    }

    #[test]
    fn an_include_put_where_include_position_says_is_found_and_before_filtering(
        head in proptest::collection::vec(proptest::sample::select(&["ext_if = \"vtnet0\"", "set skip on lo0", "# comment",
            "nat on $ext_if from 10.9.0.0/24 to any -> ($ext_if)", "table <bad> persist", ""][..]), 0..6),
        tail in proptest::collection::vec(proptest::sample::select(&["pass in all", "block drop in quick", "pass out keep state",
            "antispoof for lo0", "anchor \"x\"", "match out on egress", "# trailing"][..]), 0..6),
    ) {
        let text = head.iter().chain(tail.iter()).map(|l| format!("{l}\n")).collect::<String>();
        let at = pfctl::include_position(&text);
        let mut lines: Vec<&str> = text.lines().collect();
        let include = "include \"/etc/pf.warden.conf\"";
        lines.insert(at, include);
        let edited = lines.join("\n");
        prop_assert!(pfctl::includes(&edited, "/etc/pf.warden.conf"));
        let first_filter = edited.lines().position(|l| pfctl::FILTER_KEYWORDS.contains(&l.split_whitespace().next().unwrap_or("")));
        let include_line = edited.lines().position(|l| l == include).unwrap();
        prop_assert!(first_filter.is_none_or(|f| include_line < f), "{}", edited);
    }

    // ---- Bastille -------------------------------------------------------------------------------

    #[test]
    fn bastille_readers_never_panic(version in "[0-9a-z.\\-\\n ]{0,20}", jail_conf in texty(&["mevygit {", "}", "\n",
        "  vnet;", "  vnet.interface = e0b_mevygit;", "  ip4.addr = 10.0.1.2;", "  path = /usr/local/bastille/jails/mevygit/root;",
        "  exec.start = '/bin/sh /etc/rc';", ";", "=", "interface = warden0;"]), fstab in "[ -~\\n]{0,80}", boot in proptest::option::of("[ -~]{0,20}")) {
        let _ = bastille::Version::parse(&version);
        let _ = bastille::JailConfig::parse(&jail_conf, &fstab, boot.as_deref());
    }

    #[test]
    fn bastille_versions_read_back(major in 0u32..3, minor in 0u32..30, patch in 0u32..30, date in 20240101u32..20261231) {
        prop_assert_eq!(bastille::Version::parse(&format!("{major}.{minor}.{patch}")).unwrap(), bastille::Version(major, minor, patch));
        // Date-stamped releases (0.14.20250420) count as .0.
        prop_assert_eq!(bastille::Version::parse(&format!("{major}.{minor}.{date}\n")).unwrap(), bastille::Version(major, minor, 0));
    }

    // ---- pg_hba.conf ------------------------------------------------------------------------------

    #[test]
    fn pg_hba_editing_never_panics_and_is_idempotent(
        text in texty(&["local", "host", "hostssl", "all", "postgres", "mevy", "127.0.0.1/32", "10.0.1.0/24", "scram-sha-256",
            "trust", "md5", "\t", " ", "\n", "#", "\"", "samerole", "+group", "@file", "include_dir conf.d", "\\"]),
        wanted in any::<bool>(),
    ) {
        let subnet: Ipv4Net = "10.0.1.0/24".parse().unwrap();
        let edit = |t: &str| warden_db::hba::edit(t, wanted, "host", "mevy", "mevy", &subnet, "scram-sha-256");
        if let Some(once) = edit(&text) {
            prop_assert_eq!(edit(&once), None, "a second edit changed {:?}", once);
        }
    }
}

// sh(1) round trip: spawns a shell per case, so fewer cases.
proptest! {
    #![proptest_config(config())]

    #[test]
    fn vm_bhyve_readers_never_panic(text in texty(&["NAME", "DATASTORE", "STATE", "TAGS", "  ", "Running (", "12)", "Stopped",
        "\n", "cpu=", "\"2\"", "#", "addresses:", " [10.0.0.1/24]", "    ", "- ", ": initialising", "[cpu: ", "]", "vm-bhyve v1.7"])) {
        let _ = vm_bhyve::parse_list(&text);
        let _ = vm_bhyve::Version::parse(&text);
        let _ = vm_bhyve::network_config_address(&text);
        let _ = vm_bhyve::last_started_with(&text);
        let _ = vm_bhyve::start_failure(&text);
        let _ = vm_bhyve::parse_file_list(&text);
        let conf = vm_bhyve::VmConf::parse(&text);
        let _ = (conf.get("cpu"), conf.entries());
    }

    /// What the simulator's column(1) prints, the runtime's reader reads back cell for cell.
    #[test]
    fn vm_list_tables_read_back_by_their_header(
        rows in proptest::collection::vec(
            ("[a-z0-9][a-z0-9.-]{0,10}[a-z0-9]", "[a-z]{1,8}", 1u32..64, "[0-9]{1,4}[MG]",
             prop_oneof![Just("No".to_string()), (1u32..9).prop_map(|n| format!("Yes [{n}]"))],
             prop_oneof![(1u32..99999).prop_map(|p| format!("Running ({p})")), Just("Stopped".to_string()),
                         Just("Suspended".to_string()), "[a-z]{1,6}".prop_map(|h| format!("Locked ({h})"))],
             proptest::collection::vec("[a-z]{2,6}", 0..3)),
            0..8),
        tags in any::<bool>(),
    ) {
        let mut table = vec![if tags { "NAME^DATASTORE^LOADER^CPU^MEMORY^VNC^AUTO^STATE^TAGS" } else { "NAME^DATASTORE^LOADER^CPU^MEMORY^VNC^AUTO^STATE" }.to_string()];
        for (name, ds, cpu, mem, auto, state, t) in &rows {
            let mut row = format!("{name}^{ds}^bhyveload^{cpu}^{mem}^-^{auto}^{state}");
            if tags {
                row.push('^');
                row.push_str(&if t.is_empty() { "-".to_string() } else { t.join(",") });
            }
            table.push(row);
        }
        let read = vm_bhyve::parse_list(&warden_sim::vm::column(&table)).unwrap();
        prop_assert_eq!(read.len(), rows.len());
        for (got, (name, ds, cpu, mem, auto, state, t)) in read.iter().zip(&rows) {
            prop_assert_eq!(&got.name, name);
            prop_assert_eq!(&got.datastore, ds);
            prop_assert_eq!(&got.cpu, &cpu.to_string());
            prop_assert_eq!(&got.memory, mem);
            prop_assert_eq!(&got.auto, auto);
            prop_assert_eq!(got.state.to_string(), state.clone());
            prop_assert_eq!(&got.tags, &if tags { t.clone() } else { Vec::new() });
        }
    }

    #[test]
    fn vm_conf_edits_read_back(key in "[a-z][a-z0-9_]{0,10}", value in "[A-Za-z0-9 ._/-]{0,16}", noise in texty(&["cpu=1\n", "# x\n", "memory=\"2G\"\n", "\n"])) {
        let mut conf = vm_bhyve::VmConf::parse(&noise);
        conf.set(&key, &value);
        prop_assert_eq!(conf.get(&key), Some(value.clone()));
        conf.remove(&key);
        prop_assert_eq!(conf.get(&key), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..config() })]

    #[test]
    fn sh_quote_reads_back_byte_for_byte(word in "[ -~\\t\\n]{0,30}|\\PC{0,8}") {
        let word = word.replace('\0', "");
        let out = Command::new("/bin/sh").arg("-c").arg(format!("printf %s {}", shell::sh_quote(&word))).output().unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&out.stdout).into_owned(), word);
    }
}
