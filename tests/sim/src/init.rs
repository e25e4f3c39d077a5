//! Creating a simulated host: the FreeBSD file tree the modules touch, the rc.subr stand-in
//! with the host root baked in (service(8) runs scripts with an empty environment, so the
//! stand-in cannot learn the root from a variable), and the interface state.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::ifconfig::IfState;

/// The rc.subr stand-in; `@ROOT@` is replaced by the host root.
const RC_SUBR: &str = include_str!("../share/rc.subr");

/// A small /etc/defaults/rc.conf with the defaults the modules' tools and the boot sequence
/// consult (values from freebsd/freebsd-src libexec/rc/rc.conf at 0216ab4d, where
/// `ifconfig_lo0` is commented out: network.subr `ipv4_up` gives lo0 127.0.0.1/8 itself).
const DEFAULTS_RC_CONF: &str = r#"# /etc/defaults/rc.conf (subset) for the warden FreeBSD simulator.
rc_startmsgs="YES"
local_startup="/usr/local/etc/rc.d"
rc_conf_files="/etc/rc.conf /etc/rc.conf.local"
netif_enable="YES"
synchronous_dhclient="NO"
network_interfaces="auto"
cloned_interfaces=""
gateway_enable="NO"
sshd_enable="NO"
pf_enable="NO"
pf_rules="/etc/pf.conf"
pf_program="/sbin/pfctl"
pf_flags=""
pflog_enable="NO"
jail_enable="NO"
"#;

/// Locales present on a stock FreeBSD 14 (usr/share/locale), a few of each kind.
pub const LOCALES: [&str; 9] = [
    "C.UTF-8",
    "de_DE.UTF-8",
    "en_US.ISO8859-1",
    "en_US.UTF-8",
    "ru_RU.UTF-8",
    "sl_SI.ISO8859-2",
    "sl_SI.UTF-8",
    "zh_CN.UTF-8",
    "uk_UA.UTF-8",
];

/// Creates (or resets) a simulated host under `root`.
pub fn init_host(root: &Path, hostname: Option<&str>) -> Result<()> {
    let hostname = hostname.unwrap_or("sim");
    for dir in [
        "etc/defaults",
        "etc/rc.d",
        "etc/rc.conf.d",
        "usr/local/etc/rc.d",
        "usr/local/etc/rc.conf.d",
        "usr/share/locale",
        "var/run",
        "var/log",
        "tmp",
        "usr/home",
        "sim",
        "usr/local/etc/bastille",
        "usr/local/bastille/jails",
        "usr/local/bastille/releases",
    ] {
        fs::create_dir_all(root.join(dir)).with_context(|| format!("cannot create {dir}"))?;
    }
    // `/home -> usr/home`, as pw(8) leaves it when it makes the first user's home on a host
    // without /home (freebsd-src usr.sbin/pw/pw_user.c: the base goes under /usr, and a
    // relative link from the root takes its name). A ZFS install has a /home dataset instead.
    if fs::symlink_metadata(root.join("home")).is_err() {
        std::os::unix::fs::symlink("usr/home", root.join("home"))
            .context("cannot link home to usr/home")?;
    }
    let root_text = root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let root_text = root_text.to_string_lossy();
    write(root, "etc/defaults/rc.conf", DEFAULTS_RC_CONF, 0o444)?;
    write(
        root,
        "etc/rc.conf",
        &format!("hostname=\"{hostname}\"\nifconfig_vtnet0=\"DHCP\"\nsshd_enable=\"YES\"\n"),
        0o644,
    )?;
    write(
        root,
        "etc/rc.subr",
        &RC_SUBR.replace("@ROOT@", &root_text),
        0o444,
    )?;
    // Bastille's configuration (bastille.conf.sample defaults, prefix under the host root).
    write(
        root,
        "usr/local/etc/bastille/bastille.conf",
        &format!(
            "bastille_prefix=\"{root_text}/usr/local/bastille\"\nbastille_network_gateway=\"\"\n"
        ),
        0o644,
    )?;
    for locale in LOCALES {
        let dir = root.join("usr/share/locale").join(locale);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("LC_CTYPE"), "")?;
    }
    IfState::initial().save(root)?;
    fs::write(root.join("sim/calls.log"), "")?;
    Ok(())
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if path.exists() {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    }
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Makes `ifconfig`, `sysrc` and `service` links to this binary in `bin_dir`.
pub fn make_links(bin_dir: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("cannot locate freebsd-sim itself")?;
    fs::create_dir_all(bin_dir)?;
    for tool in crate::TOOLS {
        let link = bin_dir.join(tool);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    Ok(())
}
