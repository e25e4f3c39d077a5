//! Reads the host once, through the runtime's `ifconfig` and `rcconf` files: `ifconfig -a`
//! (every interface with its addresses, flags and groups: a renamed bridge stays in group
//! `bridge`, so `-g bridge` would tell nothing more) and the rc.conf chain rc.d/netif reads
//! (`load_rc_config network`, then `netif`: rc.conf, rc.conf.local, rc.conf.d/network,
//! rc.conf.d/netif). Nothing here decides; [`crate::plan::plan`] does.

use std::path::PathBuf;

use anyhow::{bail, Result};

use warden_runtime::ifconfig::{self, Interface};
use warden_runtime::rcconf::{RcChain, RcLookup, RcValue};
use warden_runtime::{find_tool, sysrc, Host};

/// The tools the plan's steps run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub ifconfig: PathBuf,
    pub sysrc: PathBuf,
}

/// Everything the planner may know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub tools: Tools,
    /// `ifconfig -a`.
    pub interfaces: Vec<Interface>,
    /// What rc.d/netif reads at boot.
    pub rc: RcChain,
}

impl Observed {
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The words of `cloned_interfaces`, which rc.d/netif creates at boot.
    pub fn cloned(&self) -> Result<Vec<String>> {
        match self.rc.lookup("cloned_interfaces") {
            None => Ok(Vec::new()),
            Some(RcValue::Literal(v)) => Ok(v.split_whitespace().map(String::from).collect()),
            Some(RcValue::Dynamic(_)) => {
                bail!(
                    "{} is set with a shell expansion; cannot add the bridge to it",
                    self.rc.describe("cloned_interfaces")
                )
            }
        }
    }
}

pub fn observe(host: &Host) -> Result<Observed> {
    let ifconfig_tool = find_tool("ifconfig")?;
    Ok(Observed {
        interfaces: ifconfig::all(&ifconfig_tool)?,
        rc: RcChain::read(&host.rc, &["network", "netif"])?,
        tools: Tools {
            ifconfig: ifconfig_tool,
            // /usr/sbin/sysrc on FreeBSD; only a plan that changes rc.conf runs it.
            sysrc: sysrc::tool(),
        },
    })
}
