//! `freebsd-sim boot <root>`: the simulated host reboots. What ran is gone, and the host
//! comes back from its files the way FreeBSD's rc does, so a test can check that the state
//! warden leaves is the state the host boots into (docs/freebsd-facts.md §9).
//!
//! Every step drives the simulated tools themselves ([`dispatch::run_tool`], logged to the
//! call log): a change to how `ifconfig`, `pfctl`, `sysctl`, `service` or `bastille` behave
//! flows into boot. rc.conf is evaluated by `/bin/sh` sourcing the files as rc.subr's
//! `load_rc_config` does, independent of the modules' own reader. Sources
//! (freebsd/freebsd-src unless noted; the commit is the version read):
//! * `/etc/rc` (libexec/rc/rc, 023fc80e): `load_rc_config`, then every script in rcorder
//!   order with `faststart`; local scripts from `local_startup` join after
//!   `early_late_divider` (`find_local_scripts_new` in rc.subr: executable files holding a
//!   `# PROVIDE:` line, not `*.sample`/`*.pkgsave`);
//! * `load_rc_config` (libexec/rc/rc.subr, 02274513) and `source_rc_confs`
//!   (libexec/rc/rc.conf, 0216ab4d): defaults, each of `rc_conf_files` (twice, to pick up a
//!   redefined list), then `<dir>/rc.conf.d/<service>` — a file, or each file in that
//!   directory — for `/etc` and every `local_startup` directory minus `/rc.d`;
//! * rc.d/sysctl (023fc80e): `sysctl -i -f /etc/sysctl.conf` and `/etc/sysctl.conf.local`;
//!   rc.d/sysctl_lastload (6d13bb0e, REQUIRE: LOGIN) applies them again without `-i`;
//! * rc.d/netif (023fc80e) `netif_start` with network.subr (03ccfdd2): `clone_up`
//!   (`cloned_interfaces`, `create_args_<if>`, skipped when the interface exists; prints
//!   `Created clone interfaces: …`), `ifnet_rename` (`ifconfig_<if>_name` for each name of
//!   `ifconfig -l`), then `ifn_start` over `list_net_interfaces` (`AUTO`: `ifconfig -l`
//!   after the rename, lo0 first, `NOAUTO` skipped; else `network_interfaces` plus
//!   `cloned_interfaces`, lo0 prepended): `ifconfig_up` (`ifconfig_<if>` minus
//!   DHCP/NOAUTO/SYNCDHCP/NOSYNCDHCP/WPA/HOSTAP, `_descr`, `up`, DHCP), `ipv4_up` (lo0 gets
//!   `127.0.0.1/8` when `ifconfig_lo0` is unset; `ifalias_af_common`: `_aliases`, then
//!   `_alias<N>` numerically until an empty one, without `inet` taken as IPv4 with a
//!   warning, then `ipv4_addrs_<if>`, each chunk run as `ifconfig <if> <chunk> alias`);
//!   prints `Starting Network: …` and each configured interface's status;
//! * rc.d/routing (023fc80e) `options_inet`: `gateway_enable` sets
//!   `net.inet.ip.forwarding` to 1 or 0;
//! * rc.d/pf (1b1334b1): with `pf_enable`, `required_files="$pf_rules"`,
//!   `required_modules="pf"` (rc.subr `load_kld`: `kldstat -q -m pf || kldload pf`), then
//!   `pfctl -F all`, `pfctl -f $pf_rules $pf_flags`, and `pfctl -eq` unless `pfctl -s info`
//!   says Enabled;
//! * local rc.d scripts with `<name>_enable=YES` (the agents' services) start through
//!   their own rc.subr code, as `service <name> faststart` runs them;
//! * jails: Bastille's rc.d/bastille, per version — see [`boot_jails`].
//!
//! Not simulated, so boot fails loudly when rc.conf asks for it: IPv6 configuration,
//! address ranges, `gif_interfaces`, `vlans_<if>`, wlan, `/etc/start_if.<if>`. Static routes
//! are skipped (the simulator has no routing table). DHCP interfaces get the address the
//! host was created with (its DHCP server always offers the same lease; dhclient-script
//! sets it with `ifconfig <if> inet …`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bastille::Version;
use crate::dispatch::{run_logged, Out};
use crate::ifconfig::{IfKind, IfState};

/// Reboots the host under `root`; returns what the console showed.
pub fn boot(root: &Path) -> Result<String> {
    let mut console = Console::default();
    shutdown(root, &mut console)?;
    reset_kernel(root)?;
    let global = RcVars::load(root, &[])?;
    sysctl_conf(root, true, &mut console)?;
    netif(root, &mut console)?;
    routing(root, &mut console)?;
    pf(root, &mut console)?;
    // LOGIN: the late stage (rc.d/sysctl_lastload, then local scripts and jails).
    sysctl_conf(root, false, &mut console)?;
    local_scripts(root, &global, &mut console)?;
    Ok(console.text)
}

#[derive(Default)]
struct Console {
    text: String,
}

impl Console {
    fn line(&mut self, text: impl AsRef<str>) {
        self.text.push_str(text.as_ref());
        self.text.push('\n');
    }
    fn out(&mut self, out: &Out) {
        self.text.push_str(&out.stdout);
        self.text.push_str(&out.stderr);
    }
}

fn tool(root: &Path, name: &str, args: &[&str]) -> Out {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    run_logged(root, name, &args)
}

/// What a reboot leaves of the running system: nothing. Jails are stopped through the
/// simulated Bastille (which takes their epairs and services away), every tmux server whose
/// socket lives under the host root is killed (the agents' sessions).
fn shutdown(root: &Path, console: &mut Console) -> Result<()> {
    let running = tool(root, "jls", &["name"]);
    for name in running.stdout.split_whitespace() {
        tool(root, "bastille", &["stop", name]);
    }
    let mut sockets = Vec::new();
    find_sockets(root, &mut sockets);
    if let Some(tmux) = which("tmux") {
        for socket in sockets {
            let _ = Command::new(&tmux)
                .arg("-S")
                .arg(&socket)
                .arg("kill-server")
                .output();
        }
    }
    console.line("Rebooting...");
    Ok(())
}

fn find_sockets(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            find_sockets(&entry.path(), out);
        } else if ft.is_socket() {
            out.push(entry.path());
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A fresh kernel: the interfaces the host was created with (lo0 and its physical NICs,
/// without addresses until netif configures them), no PF rules, PF disabled, no kernel
/// modules loaded, sysctls at their defaults.
fn reset_kernel(root: &Path) -> Result<()> {
    let mut state = IfState::initial();
    for iface in &mut state.ifaces {
        iface.inet.clear();
        iface.up = false;
    }
    state.save(root).context("cannot reset the interfaces")?;
    for file in ["sim/pf.json", "sim/kld", "sim/sysctl.json"] {
        match fs::remove_file(root.join(file)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot reset {file}")),
        }
    }
    Ok(())
}

/// The host's FreeBSD path `/etc/x` under the root.
fn host_path(root: &Path, freebsd: &str) -> PathBuf {
    root.join(freebsd.trim_start_matches('/'))
}

/// rc.conf as a script that called `load_rc_config` for `services` sees it.
struct RcVars {
    vars: BTreeMap<String, String>,
}

/// rc.subr `load_rc_config` and libexec/rc/rc.conf `source_rc_confs`, with every FreeBSD
/// path under the host root (`$1`); the remaining arguments are the services. Every
/// assignment is exported (`set -a`) so `env -0` can list what the files set.
const LOAD_RC_CONFIG: &str = r#"__root=$1; shift
set -a
. "$__root/etc/defaults/rc.conf"
__sourced=:
for __pass in 1 2; do
	for __i in ${rc_conf_files}; do
		case $__sourced in
		*:$__i:*) ;;
		*) __sourced="$__sourced$__i:"
		   if [ -r "$__root$__i" ]; then . "$__root$__i"; fi ;;
		esac
	done
done
for __svc in "$@"; do
	for __d in /etc ${local_startup}; do
		__d=${__d%/rc.d}
		if [ -f "$__root$__d/rc.conf.d/$__svc" ]; then
			. "$__root$__d/rc.conf.d/$__svc"
		elif [ -d "$__root$__d/rc.conf.d/$__svc" ]; then
			for __rc in "$__root$__d/rc.conf.d/$__svc"/*; do
				if [ -f "$__rc" ]; then . "$__rc"; fi
			done
		fi
	done
done
exec /usr/bin/env -0
"#;

impl RcVars {
    fn load(root: &Path, services: &[&str]) -> Result<RcVars> {
        let out = Command::new("/bin/sh")
            .env_clear()
            .arg("-c")
            .arg(LOAD_RC_CONFIG)
            .arg("sh")
            .arg(root)
            .args(services)
            .output()
            .context("cannot run /bin/sh to read rc.conf")?;
        if !out.status.success() {
            bail!(
                "rc.conf could not be sourced (services {services:?}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let vars = out
            .stdout
            .split(|b| *b == 0)
            .filter_map(|entry| {
                let text = String::from_utf8_lossy(entry);
                let (name, value) = text.split_once('=')?;
                (!name.starts_with("__")).then(|| (name.to_string(), value.to_string()))
            })
            .collect();
        Ok(RcVars { vars })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn words(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// rc.subr `checkyesno`; an odd value is NO with a warning. Unset is NO: each script
    /// that reads one of these sets its default first (`: ${bastille_enable:="NO"}`), or
    /// /etc/defaults/rc.conf does.
    fn yes(&self, name: &str, console: &mut Console) -> bool {
        match self.get(name).unwrap_or("NO").to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => true,
            "no" | "false" | "off" | "0" => false,
            _ => {
                console.line(format!(
                    "/etc/rc: WARNING: ${name} is not set properly - see rc.conf(5)."
                ));
                false
            }
        }
    }

    /// network.subr `get_if_var`: `.-/+` in the interface name become `_`.
    fn if_var(&self, interface: &str, pattern: &str) -> Option<&str> {
        let safe = interface.replace(['.', '-', '/', '+'], "_");
        self.get(&pattern.replace("IF", &safe))
    }
}

/// rc.d/sysctl (`-i`: unknown OIDs ignored) or rc.d/sysctl_lastload; sbin/sysctl/sysctl.c
/// `parsefile`: `#` starts a comment, blank lines are skipped, each line is `name=value`.
fn sysctl_conf(root: &Path, ignore_unknown: bool, console: &mut Console) -> Result<()> {
    for file in ["/etc/sysctl.conf", "/etc/sysctl.conf.local"] {
        let Ok(text) = fs::read_to_string(host_path(root, file)) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if !line.contains('=') {
                console.line(format!("sysctl: {file}:{}: syntax error", n + 1));
                continue;
            }
            let setting: String = line.split_whitespace().collect();
            let out = tool(root, "sysctl", &[&setting]);
            if out.rc != 0 && !ignore_unknown {
                console.line(out.stderr.trim_end());
            }
        }
    }
    Ok(())
}

/// rc.d/netif `netif_start`.
fn netif(root: &Path, console: &mut Console) -> Result<()> {
    let rc = RcVars::load(root, &["network", "netif"])?;
    if !rc.yes("netif_enable", console) {
        return Ok(());
    }
    for name in ["gif_interfaces"] {
        if !rc.words(name).is_empty() {
            bail!("{name} is set; gif(4) interfaces are not simulated");
        }
    }
    if rc.vars.keys().any(|k| k.starts_with("wlans_")) {
        bail!("wlans_* is set; wlan(4) interfaces are not simulated");
    }
    // clone_up
    let mut created = Vec::new();
    for word in rc.words("cloned_interfaces") {
        let ifn = word.split(':').next().unwrap_or("").to_string();
        let create_args = rc.if_var(&ifn, "create_args_IF").unwrap_or("").to_string();
        let epair = ifn
            .strip_prefix("epair")
            .is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit()));
        let exists = |n: &str| tool(root, "ifconfig", &[n]).rc == 0;
        if epair {
            if exists(&format!("{ifn}a")) || exists(&format!("{ifn}b")) {
                continue;
            }
        } else if exists(&ifn) {
            continue;
        }
        let mut args = vec![ifn.clone(), "create".to_string()];
        args.extend(create_args.split_whitespace().map(String::from));
        let out = run_logged(root, "ifconfig", &args);
        console.out(&out);
        if out.rc == 0 {
            if epair {
                created.push(format!("{ifn}a"));
                created.push(format!("{ifn}b"));
            } else {
                created.push(ifn);
            }
        }
    }
    if !created.is_empty() {
        console.line(format!("Created clone interfaces: {}.", created.join(" ")));
    }
    // ifnet_rename
    for ifn in tool(root, "ifconfig", &["-l"]).stdout.split_whitespace() {
        if let Some(new) = rc.if_var(ifn, "ifconfig_IF_name").filter(|v| !v.is_empty()) {
            let out = tool(root, "ifconfig", &[ifn, "name", new]);
            console.text.push_str(&out.stderr);
        }
    }
    // netif_common ifn_start over list_net_interfaces
    let mut ok = Vec::new();
    for ifn in list_net_interfaces(root, &rc) {
        if ifn_start(root, &rc, &ifn, console)? {
            ok.push(ifn);
        }
    }
    if !ok.is_empty() {
        // startmsg, then (check_startmsgs: rc_startmsgs=YES) `/sbin/ifconfig <if>` each.
        console.line(format!("Starting Network: {}.", ok.join(" ")));
        for ifn in &ok {
            console.out(&tool(root, "ifconfig", &[ifn]));
        }
    }
    Ok(())
}

/// network.subr `_ifconfig_getargs`: `ifconfig_<if>`, else `ifconfig_DEFAULT`.
fn raw_args<'a>(rc: &'a RcVars, ifn: &str) -> &'a str {
    rc.if_var(ifn, "ifconfig_IF")
        .or_else(|| rc.get("ifconfig_DEFAULT"))
        .unwrap_or("")
}

fn has_word(rc: &RcVars, ifn: &str, words: &[&str]) -> bool {
    raw_args(rc, ifn)
        .split_whitespace()
        .any(|w| words.iter().any(|x| w.eq_ignore_ascii_case(x)))
}

/// network.subr `list_net_interfaces` (no type).
fn list_net_interfaces(root: &Path, rc: &RcVars) -> Vec<String> {
    let setting = rc.get("network_interfaces").unwrap_or("");
    if setting.eq_ignore_ascii_case("auto") {
        let mut list = Vec::new();
        let mut lo = false;
        for ifn in tool(root, "ifconfig", &["-l"]).stdout.split_whitespace() {
            // autoif: NOAUTO keeps an interface out.
            if has_word(rc, ifn, &["NOAUTO"]) {
                continue;
            }
            if ifn == "lo0" {
                lo = true;
            } else {
                list.push(ifn.to_string());
            }
        }
        if lo {
            list.insert(0, "lo0".into());
        }
        return list;
    }
    let mut list = Vec::new();
    for ifn in rc
        .words("network_interfaces")
        .into_iter()
        .chain(rc.words("cloned_interfaces"))
    {
        if ifn.starts_with("epair") {
            list.push(format!("{ifn}a"));
            list.push(format!("{ifn}b"));
        } else {
            list.push(ifn);
        }
    }
    if !list.iter().any(|i| i == "lo0") {
        list.insert(0, "lo0".into());
    }
    list
}

/// network.subr `ifn_start`.
fn ifn_start(root: &Path, rc: &RcVars, ifn: &str, console: &mut Console) -> Result<bool> {
    if host_path(root, &format!("/etc/start_if.{ifn}")).exists() {
        bail!("/etc/start_if.{ifn} exists; interface start scripts are not simulated");
    }
    let mut cfg = ifconfig_up(root, rc, ifn, console)?;
    // afexists inet: yes.
    cfg |= ipv4_up(root, rc, ifn, console)?;
    // afexists inet6: the simulated kernel has INET6 (lo0 carries ::1), so ipv6_up runs;
    // it returns success for an interface that is not ipv6if (network.subr `ipv6_up`),
    // which counts the interface as configured.
    cfg |= ipv6_up(rc, ifn)?;
    if rc
        .if_var(ifn, "vlans_IF")
        .is_some_and(|v| !v.trim().is_empty())
    {
        bail!("vlans_{ifn} is set; vlan(4) interfaces are not simulated");
    }
    Ok(cfg)
}

/// network.subr `ipv6if` and `ipv6_up`: only the parts that decide the return value;
/// configuring IPv6 is not simulated.
fn ipv6_up(rc: &RcVars, ifn: &str) -> Result<bool> {
    for pattern in ["ifconfig_IF_ipv6", "ipv6_prefix_IF", "ipv6_ifconfig_IF"] {
        if rc.if_var(ifn, pattern).is_some_and(|v| !v.is_empty()) {
            bail!(
                "{} is set; IPv6 configuration is not simulated",
                pattern.replace("IF", ifn)
            );
        }
    }
    // lo0 is always ipv6if; with nothing configured its aliases and prefixes add nothing.
    Ok(ifn != "lo0")
}

/// network.subr `ifconfig_up`.
fn ifconfig_up(root: &Path, rc: &RcVars, ifn: &str, console: &mut Console) -> Result<bool> {
    let mut cfg = ifn == "lo0";
    if rc
        .get("ipv6_activate_all_interfaces")
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
    {
        bail!("ipv6_activate_all_interfaces is set; IPv6 configuration is not simulated");
    }
    // ifconfig_getargs: the pseudo-arguments are dropped, `vnet <jail>` is skipped.
    let mut args = Vec::new();
    let mut vnet = false;
    for arg in raw_args(rc, ifn).split_whitespace() {
        let upper = arg.to_ascii_uppercase();
        match (upper.as_str(), vnet) {
            ("DHCP" | "NOAUTO" | "NOSYNCDHCP" | "SYNCDHCP" | "WPA" | "HOSTAP", false) => {}
            ("VNET", false) if arg == "vnet" => vnet = true,
            (_, true) => vnet = false,
            _ => args.push(arg),
        }
    }
    if !args.is_empty() {
        // `eval ${IFCONFIG_CMD} $1 ${ifconfig_args}`: sh re-reads the words.
        let mut argv = vec![ifn.to_string()];
        argv.extend(sh_words(&args.join(" ")));
        console.out(&run_logged(root, "ifconfig", &argv));
        cfg = true;
    }
    for family in ["link", "ether"] {
        if alias_chunks(rc, ifn, family, console).next().is_some() {
            bail!("a {family} alias is set for {ifn}; link-layer aliases are not simulated");
        }
    }
    if let Some(descr) = rc
        .if_var(ifn, "ifconfig_IF_descr")
        .filter(|d| !d.is_empty())
    {
        console.out(&tool(root, "ifconfig", &[ifn, "description", descr]));
    }
    if has_word(rc, ifn, &["WPA", "HOSTAP"]) {
        bail!("{ifn} is a WPA or HOSTAP interface; wireless is not simulated");
    }
    if cfg {
        console.out(&tool(root, "ifconfig", &[ifn, "up"]));
    }
    // dhcpif (never lo*, stf*, lp*, sl*).
    let dhcp = !["lo", "stf", "lp", "sl"].iter().any(|p| {
        ifn.strip_prefix(p)
            .is_some_and(|u| u.starts_with(|c: char| c.is_ascii_digit()))
    }) && has_word(rc, ifn, &["DHCP", "SYNCDHCP", "NOSYNCDHCP"]);
    if dhcp {
        if !cfg {
            console.out(&tool(root, "ifconfig", &[ifn, "up"]));
        }
        dhcp_lease(root, ifn, console);
        cfg = true;
    }
    Ok(cfg)
}

/// dhclient (started by netif for SYNCDHCP, else by devd on link up): the simulated DHCP
/// server offers the address the host was created with, which dhclient-script sets with
/// `ifconfig <if> inet <address> netmask <mask>` (sbin/dhclient/dhclient-script).
fn dhcp_lease(root: &Path, ifn: &str, console: &mut Console) {
    let initial = IfState::initial();
    let Some(lease) = initial
        .ifaces
        .iter()
        .find(|i| i.name == ifn && i.kind == IfKind::Ether)
        .and_then(|i| i.inet.first().cloned())
    else {
        console.line(format!("{ifn}: no DHCPOFFERS received."));
        return;
    };
    console.out(&tool(
        root,
        "ifconfig",
        &[ifn, "inet", &format!("{}/{}", lease.addr, lease.prefix)],
    ));
}

/// network.subr `ipv4_up`.
fn ipv4_up(root: &Path, rc: &RcVars, ifn: &str, console: &mut Console) -> Result<bool> {
    if ifn == "lo0" && rc.if_var(ifn, "ifconfig_IF").is_none_or(str::is_empty) {
        console.out(&tool(
            root,
            "ifconfig",
            &["lo0", "inet", "127.0.0.1/8", "alias"],
        ));
    }
    let chunks: Vec<Vec<String>> = alias_chunks(rc, ifn, "inet", console).collect();
    let mut done = false;
    for chunk in chunks {
        if chunk.iter().skip(1).any(|w| {
            w.split('/')
                .next()
                .is_some_and(|a| a.contains('-') && a.starts_with(|c: char| c.is_ascii_digit()))
        }) {
            bail!(
                "{ifn}: the address range in `{}` is not simulated",
                chunk.join(" ")
            );
        }
        let mut argv = vec![ifn.to_string()];
        argv.extend(chunk);
        argv.push("alias".into());
        let out = run_logged(root, "ifconfig", &argv);
        console.out(&out);
        done |= out.rc == 0;
    }
    Ok(done)
}

/// network.subr `ifalias_af_common`: the words of `ifconfig_<if>_aliases`, then of each
/// `ifconfig_<if>_alias<N>` of family `af` in numeric order (an empty one stops the list; a
/// value without a family keyword is taken as inet, with a warning), then `ipv4_addrs_<if>`
/// (inet), cut into chunks at every family keyword; the chunks of family `af`.
fn alias_chunks(
    rc: &RcVars,
    ifn: &str,
    af: &str,
    console: &mut Console,
) -> impl Iterator<Item = Vec<String>> {
    const FAMILIES: [&str; 4] = ["inet", "inet6", "link", "ether"];
    let vif = ifn.replace(['.', '-', '/', '+'], "_");
    let prefix = format!("ifconfig_{vif}_alias");
    // list_vars ifconfig_<vif>_alias[0-9]*, then sort_lite -n on what follows the prefix.
    let mut numbered: Vec<(u64, &String)> = rc
        .vars
        .keys()
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?;
            rest.starts_with(|c: char| c.is_ascii_digit()).then(|| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                (digits.parse().unwrap_or(u64::MAX), name)
            })
        })
        .collect();
    numbered.sort();
    let mut aliasn: Vec<String> = Vec::new();
    for (_, name) in numbered {
        let value = rc.get(name).unwrap_or("");
        let family = FAMILIES
            .iter()
            .find(|f| value.starts_with(&format!("{f} ")))
            .copied();
        match family {
            Some(f) if f == af => aliasn.extend(value.split_whitespace().map(String::from)),
            None if value.is_empty() => break,
            None if af == "inet" => {
                aliasn.push("inet".into());
                aliasn.extend(value.split_whitespace().map(String::from));
                console.line(format!(
                    "/etc/rc.d/netif: WARNING: ${name} needs leading \"inet\" keyword for an IPv4 address."
                ));
            }
            _ => {}
        }
    }
    if af == "inet" {
        for word in rc
            .if_var(ifn, "ipv4_addrs_IF")
            .unwrap_or("")
            .split_whitespace()
        {
            aliasn.push("inet".into());
            aliasn.push(word.to_string());
        }
    }
    let words: Vec<String> = rc
        .if_var(ifn, "ifconfig_IF_aliases")
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .chain(aliasn)
        .collect();
    let mut chunks: Vec<Vec<String>> = Vec::new();
    for word in words {
        if FAMILIES.contains(&word.as_str()) || chunks.is_empty() {
            chunks.push(vec![word]);
        } else if let Some(last) = chunks.last_mut() {
            last.push(word);
        }
    }
    let af = af.to_string();
    chunks
        .into_iter()
        .filter(move |c| c.first() == Some(&af) && c.len() > 1)
}

/// sh's reading of a command line for `eval`: blanks split words, quotes and backslashes
/// are removed (no expansions: rc.conf values reach netif already expanded).
fn sh_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('$' | '`' | '"' | '\\')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => {}
                        },
                        q => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// rc.d/routing `options_inet` (static routes are not simulated).
fn routing(root: &Path, console: &mut Console) -> Result<()> {
    let rc = RcVars::load(root, &["routing"])?;
    if rc.yes("gateway_enable", console) {
        console.line("Additional inet routing options: gateway=YES.");
        tool(root, "sysctl", &["net.inet.ip.forwarding=1"]);
    } else {
        tool(root, "sysctl", &["net.inet.ip.forwarding=0"]);
    }
    Ok(())
}

/// rc.d/pf `start` under `run_rc_command`.
fn pf(root: &Path, console: &mut Console) -> Result<()> {
    let rc = RcVars::load(root, &["pf"])?;
    if !rc.yes("pf_enable", console) {
        return Ok(());
    }
    let rules = rc.get("pf_rules").unwrap_or("/etc/pf.conf").to_string();
    let rules_path = host_path(root, &rules);
    // check_required_before: required_files.
    if fs::File::open(&rules_path).is_err() {
        console.line(format!("/etc/rc.d/pf: WARNING: {rules} is not readable."));
        return Ok(());
    }
    // check_required_after: required_modules="pf" through load_kld, when the simulator
    // has the kld tools.
    if crate::TOOLS.contains(&"kldload") && tool(root, "kldstat", &["-q", "-m", "pf"]).rc != 0 {
        let out = tool(root, "kldload", &["pf"]);
        if out.rc != 0 {
            console.out(&out);
            console.line("/etc/rc.d/pf: WARNING: Unable to load kernel module pf");
            return Ok(());
        }
    }
    // pf_start. `pfctl -F all` is left out: the ruleset of a fresh boot is already empty.
    let mut load = vec!["-f".to_string(), rules_path.to_string_lossy().into_owned()];
    load.extend(rc.words("pf_flags"));
    let out = run_logged(root, "pfctl", &load);
    console.text.push_str(&out.stderr);
    if out.rc != 0 {
        console.line(format!("/etc/rc.d/pf: WARNING: Unable to load {rules}."));
    }
    if !tool(root, "pfctl", &["-s", "info"])
        .stdout
        .contains("Enabled")
    {
        tool(root, "pfctl", &["-eq"]);
    }
    console.line("Enabling pf.");
    Ok(())
}

/// One rc.d script's rcorder(8) header (sbin/rcorder/rcorder.c: `# PROVIDE:`,
/// `# REQUIRE:`, `# BEFORE:`, `# KEYWORD:` lines).
struct Script {
    name: String,
    provide: Vec<String>,
    require: Vec<String>,
    before: Vec<String>,
    keywords: Vec<String>,
}

impl Script {
    fn parse(name: &str, text: &str) -> Script {
        let mut s = Script {
            name: name.to_string(),
            provide: Vec::new(),
            require: Vec::new(),
            before: Vec::new(),
            keywords: Vec::new(),
        };
        for line in text.lines() {
            let Some(rest) = line.strip_prefix('#') else {
                continue;
            };
            let rest = rest.trim_start();
            for (key, list) in [
                ("PROVIDE:", &mut s.provide),
                ("REQUIRE:", &mut s.require),
                ("BEFORE:", &mut s.before),
                ("KEYWORD:", &mut s.keywords),
            ] {
                if let Some(words) = rest.strip_prefix(key) {
                    list.extend(words.split_whitespace().map(String::from));
                }
            }
        }
        s
    }
}

/// rcorder: every script after what it REQUIREs and before what it is BEFORE; requirements
/// no script here provides (LOGIN, NETWORKING, …) are already met at this stage. Ties keep
/// the order of the file names.
fn rcorder(scripts: Vec<Script>, console: &mut Console) -> Vec<Script> {
    let n = scripts.len();
    let provides = |i: usize, what: &str| scripts[i].provide.iter().any(|p| p == what);
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for req in &scripts[i].require {
            for j in (0..n).filter(|&j| j != i && provides(j, req)) {
                after[i].push(j);
            }
        }
        for b in &scripts[i].before {
            for j in (0..n).filter(|&j| j != i && provides(j, b)) {
                after[j].push(i);
            }
        }
    }
    let mut done = vec![false; n];
    let mut order = Vec::new();
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && after[i].iter().all(|&j| done[j]));
        let i = match next {
            Some(i) => i,
            None => {
                let i = (0..n).find(|&i| !done[i]).unwrap_or(0);
                console.line(format!(
                    "rcorder: Circular dependency on provision `{}'",
                    scripts[i].provide.first().cloned().unwrap_or_default()
                ));
                i
            }
        };
        done[i] = true;
        order.push(i);
    }
    let mut slots: Vec<Option<Script>> = scripts.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The late stage of /etc/rc: rc.subr `find_local_scripts_new` over `local_startup`, run
/// in rcorder order with `faststart` (skipping `KEYWORD: nostart`); Bastille's rc.d script
/// is stood in for by [`boot_jails`] when the host has none.
fn local_scripts(root: &Path, rc: &RcVars, console: &mut Console) -> Result<()> {
    let mut scripts = Vec::new();
    for dir in rc.words("local_startup") {
        let Ok(entries) = fs::read_dir(host_path(root, &dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".sample") || name.ends_with(".pkgsave") {
                continue;
            }
            let executable = fs::metadata(&path)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            if executable && text.lines().any(|l| l.starts_with("# PROVIDE:")) {
                scripts.push(Script::parse(&name, &text));
            }
        }
    }
    if !scripts
        .iter()
        .any(|s| s.provide.iter().any(|p| p == "bastille"))
    {
        scripts.push(Script {
            name: String::new(),
            provide: vec!["bastille".into()],
            require: vec!["jail".into()],
            before: Vec::new(),
            keywords: vec!["shutdown".into()],
        });
    }
    for script in rcorder(scripts, console) {
        if script.keywords.iter().any(|k| k == "nostart") {
            continue;
        }
        if script.name.is_empty() {
            boot_jails(root, console)?;
        } else {
            console.out(&tool(root, "service", &[&script.name, "faststart"]));
        }
    }
    Ok(())
}

/// Bastille's own rc.d/bastille (BastilleBSD/bastille usr/local/etc/rc.d/bastille), which a
/// host with the bastille package runs at boot when `bastille_enable=YES`:
/// * 0.10.20231125–0.13.20250126: each word of `bastille_list` (default `ALL`) in turn,
///   `bastille start <jail>` (printing `Starting Bastille Container: <jail>`);
///   `bastille_rcorder=YES` orders them by their jail.conf instead (not simulated: name order);
/// * 0.14.20250420: `bastille start --boot --delay N ALL`, which skips a jail whose
///   `boot.conf` says `boot=off` (start.sh);
/// * 1.0.20250714–1.0.1: the same, reading `boot` from `settings.conf`;
/// * 1.1.0 and later (to 1.4.4): every jail sorted by its `settings.conf` priority, each
///   `bastille start --boot --delay N <jail>`; `bastille_list` is not read.
///
/// `ALL` and `--boot` are applied here and each jail is started with a plain
/// `bastille start <jail>` through the simulated Bastille.
fn boot_jails(root: &Path, console: &mut Console) -> Result<()> {
    let rc = RcVars::load(root, &["bastille"])?;
    if !rc.yes("bastille_enable", console) {
        return Ok(());
    }
    let version_out = tool(root, "bastille", &["-v"]);
    let version_text = format!("{}{}", version_out.stdout, version_out.stderr);
    let version = Version::parse(version_text.split_whitespace().next().unwrap_or(""));
    let conf = host_path(
        root,
        rc.get("bastille_conf")
            .unwrap_or("/usr/local/etc/bastille/bastille.conf"),
    );
    let defaults = root.join("etc/defaults/rc.conf");
    let jailsdir = crate::sysrc::eval(&defaults, std::slice::from_ref(&conf), "bastille_jailsdir")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            crate::sysrc::eval(&defaults, std::slice::from_ref(&conf), "bastille_prefix")
                .map(|p| PathBuf::from(p).join("jails"))
        })
        .context("bastille.conf sets neither bastille_jailsdir nor bastille_prefix")?;
    let mut all: Vec<String> = fs::read_dir(&jailsdir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("jail.conf").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    let setting = |jail: &str, file: &str, key: &str| {
        crate::sysrc::eval(&defaults, &[jailsdir.join(jail).join(file)], key)
    };
    let list: Vec<String> = if version < Version::parse("0.14.0") {
        let mut list = Vec::new();
        // `: ${bastille_list:="ALL"}` (rc.d/bastille at 0.10.20231125 … 0.13.20250126): unset
        // or empty is ALL (sh's `:=`); a list of blanks names no jail.
        let words = rc
            .get("bastille_list")
            .filter(|v| !v.is_empty())
            .unwrap_or("ALL");
        for word in words.split_whitespace() {
            if word == "ALL" {
                list.extend(all.iter().cloned());
            } else {
                list.push(word.to_string());
            }
        }
        for jail in &list {
            console.line(format!("Starting Bastille Container: {jail}"));
        }
        list
    } else {
        let boot_file = if version < Version::parse("1.0.0") {
            "boot.conf"
        } else {
            "settings.conf"
        };
        let mut list: Vec<String> = all
            .into_iter()
            .filter(|j| setting(j, boot_file, "boot").as_deref() != Some("off"))
            .collect();
        if version >= Version::parse("1.1.0") {
            list.sort_by_key(|j| {
                setting(j, "settings.conf", "priority")
                    .and_then(|p| p.trim().parse::<i64>().ok())
                    .unwrap_or(0)
            });
        }
        list
    };
    for jail in list {
        console.out(&tool(root, "bastille", &["start", &jail]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_reads_words_like_sh() {
        assert_eq!(
            sh_words("inet 10.0.0.1/24 description \"two words\" 'x y' a\\ b"),
            [
                "inet",
                "10.0.0.1/24",
                "description",
                "two words",
                "x y",
                "a b"
            ]
        );
    }

    #[test]
    fn rcorder_puts_requirements_first() {
        let mut console = Console::default();
        let scripts = vec![
            Script::parse("b", "# PROVIDE: b\n# REQUIRE: a LOGIN\n"),
            Script::parse("a", "# PROVIDE: a\n# REQUIRE: LOGIN\n"),
            Script::parse("c", "# PROVIDE: c\n# BEFORE: a\n"),
        ];
        let names: Vec<String> = rcorder(scripts, &mut console)
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
    }
}
