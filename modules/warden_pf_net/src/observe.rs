//! Reads the host once, through the runtime's `fs`, `ifconfig`, `kld`, `pfctl`, `sysctl` and
//! `rcconf` files: the include file and pf.conf, then what is left open once the planner's
//! own [`crate::plan::target`] has said what those files should hold — `ifconfig -l` when
//! the set is not empty, `kldstat -q -m pf`, and while pf.ko is loaded `pfctl -s nat` (with
//! `-s rules` only when `-s nat` misses a subnet) when the files are already right, and for
//! `enable` `pfctl -s info`, `sysctl -n net.inet.ip.forwarding` and the rc.conf chains
//! rc.d/pf and rc.d/routing read. Nothing here decides; [`crate::plan::plan`] does.

use std::path::{Path, PathBuf};

use anyhow::Result;

use warden_runtime::fs::{self as wfs, FileState};
use warden_runtime::rcconf::RcChain;
use warden_runtime::{find_tool, ifconfig, kld, pfctl, sysctl, Host};

use crate::plan::target;
use crate::Settings;

/// The tools the plan's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub pfctl: PathBuf,
    pub kldload: PathBuf,
    pub sysrc: PathBuf,
    pub sysctl: PathBuf,
}

/// What `enable` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabling {
    /// What rc.d/pf reads (`load_rc_config pf`): where `pf_enable` takes effect.
    pub pf_rc: RcChain,
    /// What rc.d/routing reads (`load_rc_config routing`): where `gateway_enable` does.
    pub routing_rc: RcChain,
    /// `pfctl -s info` says enabled (false while pf.ko is not loaded: a fresh module is off).
    pub pf_enabled: bool,
    /// `sysctl -n net.inet.ip.forwarding`.
    pub forwarding: String,
}

/// Everything the planner may know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub tools: Tools,
    /// The include file (`path`).
    pub include: Option<FileState>,
    /// The main ruleset (`pf_conf`).
    pub main: Option<FileState>,
    /// `ifconfig -l`, read when the subnet set is not empty.
    pub interfaces: Option<Vec<String>>,
    /// `kldstat -q -m pf`.
    pub pf_loaded: bool,
    /// `pfctl -s nat`, read while pf.ko is loaded and the files are already right.
    pub nat_rules: Option<Vec<String>>,
    /// `pfctl -s rules`, read when `-s nat` does not translate every subnet.
    pub filter_rules: Option<Vec<String>>,
    /// Read for `enable`.
    pub enabling: Option<Enabling>,
}

pub fn observe(p: &Settings, host: &Host) -> Result<Observed> {
    // kldload and sysrc run only in steps that need them; on FreeBSD they are in base.
    let or_base =
        |name: &str, dir: &str| find_tool(name).unwrap_or_else(|_| Path::new(dir).join(name));
    let mut o = Observed {
        tools: Tools {
            pfctl: find_tool("pfctl")?,
            kldload: or_base("kldload", "/sbin"),
            sysrc: or_base("sysrc", "/usr/sbin"),
            sysctl: find_tool("sysctl")?,
        },
        include: wfs::read_state(Path::new(&p.path))?,
        main: wfs::read_state(Path::new(&p.pf_conf))?,
        interfaces: None,
        pf_loaded: false,
        nat_rules: None,
        filter_rules: None,
        enabling: None,
    };
    // What the files should hold; if they cannot (a subnet overlaps, no ext_if), the planner
    // says so before anything else is asked.
    let Ok(target) = target(p, &o.include, &o.main) else {
        return Ok(o);
    };
    if !target.set.is_empty() {
        o.interfaces = Some(ifconfig::list(&find_tool("ifconfig")?)?);
    }
    o.pf_loaded = kld::is_loaded(&find_tool("kldstat")?, pfctl::KERNEL_MODULE)?;
    let nets: Vec<String> = target.set.iter().map(|n| n.to_string()).collect();
    if o.pf_loaded && target.files.is_empty() && !nets.is_empty() {
        let nat = pfctl::nat_rules(&o.tools.pfctl)?;
        // OpenBSD-style `nat-to` rules are listed with the filter rules.
        if !pfctl::translates_all(&nat, &[], &nets) {
            o.filter_rules = Some(pfctl::filter_rules(&o.tools.pfctl)?);
        }
        o.nat_rules = Some(nat);
    }
    if p.enable {
        o.enabling = Some(Enabling {
            pf_rc: RcChain::read(&host.rc, &["pf"])?,
            routing_rc: RcChain::read(&host.rc, &["routing"])?,
            pf_enabled: o.pf_loaded && pfctl::is_enabled(&o.tools.pfctl)?,
            forwarding: sysctl::get(&o.tools.sysctl, sysctl::IP_FORWARDING)?,
        });
    }
    Ok(o)
}
