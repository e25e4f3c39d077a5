//! A simulated FreeBSD host for warden's tests: fake `ifconfig`, `sysrc`, `service`, `pfctl`,
//! `sysctl`, `bastille`, `jls`, `jexec`, `pkg`, `kldstat`, `kldload`, vm-bhyve's `vm` and `makefs`
//! (one multi-call binary, `freebsd-sim`) whose state lives under one directory per host,
//! named by `$WARDEN_SIM_ROOT`, plus [`host::SimHost`] to drive it from tests.
//!
//! The fakes reproduce the real tools' output formats, messages and exit codes as recorded
//! from FreeBSD's sources and real runs; each file cites its sources.

pub mod bastille;
pub mod boot;
pub mod dispatch;
pub mod host;
pub mod ifconfig;
pub mod init;
pub mod kld;
pub mod pfctl;
pub mod service;
pub mod sysctl;
pub mod sysrc;
pub mod vm;
pub mod yaml;

/// The tools the simulator answers to (the basenames of its links).
pub const TOOLS: [&str; 13] = [
    "ifconfig", "sysrc", "service", "pfctl", "sysctl", "bastille", "jls", "jexec", "pkg",
    "kldstat", "kldload", "vm", "makefs",
];
