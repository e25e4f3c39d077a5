//! The warden module runtime: Ansible's binary-module protocol (args file in, one JSON
//! object out) and the FreeBSD host helpers every warden module shares — one
//! implementation of each.
//!
//! A module declares a [`Spec`] and a typed params struct, and implements
//! [`Module::plan`]: observe the host, compute a [`Plan`]. The runtime validates params,
//! reports the plan in check mode or applies it (with rollback), and prints the result.

pub mod args;
pub mod bastille;
pub mod exec;
pub mod fs;
pub mod host;
pub mod ifconfig;
pub mod ipv4;
pub mod kld;
pub mod lock;
pub mod netconf;
pub mod pfctl;
pub mod plan;
pub mod rcconf;
pub mod result;
pub mod runtime;
pub mod service;
pub mod shell;
pub mod spec;
pub mod sysctl;
pub mod sysrc;
pub mod vm_bhyve;

pub use exec::{find_tool, Cmd};
pub use host::Host;
pub use plan::{Diff, Plan};
pub use runtime::{run, Context, Module};
pub use spec::{Param, Spec};
