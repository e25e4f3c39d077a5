//! Params → [`Settings`]: warden_rcd's params checked beyond their types, all problems
//! reported at once, before anything on the host is read or changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use warden_layout::rules;
use warden_runtime::fs as wfs;
use warden_runtime::shell::is_identifier;
use warden_runtime::spec::State;

use crate::Params;

/// The validated settings of one run, defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub state: State,
    pub enabled: bool,
    pub started: bool,
    /// The agent user; the service's name when unset.
    pub user: Option<String>,
    /// The session's directory; the user's home when unset.
    pub workdir: Option<String>,
    /// What runs in the session (empty for `state: absent`).
    pub command: String,
    pub description: String,
    /// `tmux -L` name or `-S` path.
    pub tmux_socket: String,
    pub tmux_path: String,
    pub env: BTreeMap<String, String>,
    pub display_locale: Option<String>,
    pub assistant_locale: Option<String>,
    pub system_locale: String,
    pub path: String,
    pub require: Vec<String>,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    /// `<rcd_dir>/<name>`.
    pub script_path: PathBuf,
    pub rc_subr: String,
}

/// Environment names the locale params own.
const LOCALE_VARS: [&str; 5] = [
    "LANG",
    "LC_ALL",
    "SYSTEM_LOCALE",
    "DISPLAY_LOCALE",
    "ASSISTANT_LOCALE",
];

/// FreeBSD's MAXLOGNAME is 33 including the NUL.
const MAX_USER_LEN: usize = 32;
/// FreeBSD's sun_path holds 104 bytes including the NUL.
const MAX_SOCKET_PATH: usize = 103;
/// NAME_MAX: the name is also the script's file name.
const MAX_NAME_LEN: usize = 255;
/// The command reaches tmux as one argument; FreeBSD's ARG_MAX (sys/sys/syslimits.h) bounds
/// all of argv and the environment together, so stay well inside it.
const MAX_COMMAND_LEN: usize = 64 * 1024;

/// Validates the params; every problem is reported at once.
pub fn settings(p: &Params) -> Result<Settings> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, msg: String| {
        if !ok {
            problems.push(msg);
        }
    };

    check(
        is_identifier(&p.name) && p.name.len() <= MAX_NAME_LEN,
        format!(
            "name {:?} is not a valid service name: rc.subr evaluates ${{name}}_enable, so it must be a shell identifier ([A-Za-z_][A-Za-z0-9_]*), e.g. mevy",
            p.name
        ),
    );
    if let Some(user) = &p.user {
        check(
            is_user_name(user),
            format!("user {user:?} is not a valid FreeBSD user name (lower-case letters, digits, '_', '.', '-', at most {MAX_USER_LEN} characters)"),
        );
    }
    for (label, value) in [("owner", &p.owner), ("group", &p.group)] {
        check(
            is_user_name(value) || value.parse::<u32>().is_ok(),
            format!("{label} {value:?} is not a valid user or group name"),
        );
    }
    if p.state == State::Present {
        check(
            p.command.as_deref().is_some_and(|c| !c.trim().is_empty()),
            "command is required when state is present: it is what runs inside the agent's tmux session".into(),
        );
    }
    if let Some(command) = &p.command {
        check(
            command.len() <= MAX_COMMAND_LEN,
            format!(
                "command is {} bytes; at most {MAX_COMMAND_LEN} fit on the command line that starts the tmux session (put a longer one in a script)",
                command.len()
            ),
        );
    }
    for (label, value) in string_params(p) {
        check(
            !value.contains('\0'),
            format!("{label} contains a NUL byte"),
        );
    }
    if let Some(socket) = &p.tmux_socket {
        let ok = if socket.starts_with('/') {
            socket.len() <= MAX_SOCKET_PATH
        } else {
            !socket.is_empty()
                && socket
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        };
        check(
            ok,
            format!("tmux_socket {socket:?} must be a socket name ([A-Za-z0-9_.-]+, used with tmux -L) or an absolute path of at most {MAX_SOCKET_PATH} bytes (used with -S)"),
        );
    }
    // su re-runs the script by path through the user's login shell: keep it plain.
    check(
        p.rcd_dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b)),
        format!(
            "rcd_dir {:?} may only contain letters, digits and _ . / -",
            p.rcd_dir
        ),
    );
    for word in &p.require {
        check(
            !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            format!("require entry {word:?} is not an rcorder name (letters, digits, _)"),
        );
    }
    for key in p.env.iter().flat_map(|e| e.keys()) {
        check(
            is_identifier(key),
            format!("env key {key:?} is not a valid environment variable name"),
        );
        check(
            !LOCALE_VARS.contains(&key.as_str()),
            format!("env key {key} is set from the locale parameters (system_locale, display_locale, assistant_locale); do not set it in env"),
        );
    }
    if let Err(e) = system_locale(&p.system_locale, Path::new(&p.locale_dir)) {
        problems.push(e.to_string());
    }
    for (label, tag) in [
        ("display_locale", &p.display_locale),
        ("assistant_locale", &p.assistant_locale),
    ] {
        if let Some(Err(problem)) = tag.as_deref().map(|t| rules::check_language_tag(label, t)) {
            problems.push(problem);
        }
    }
    let mode = wfs::parse_mode(&p.mode).unwrap_or_else(|e| {
        problems.push(e.to_string());
        0
    });
    if !problems.is_empty() {
        bail!("{}", problems.join("; "))
    }
    Ok(Settings {
        name: p.name.clone(),
        state: p.state,
        enabled: p.enabled,
        started: p.started,
        user: p.user.clone(),
        workdir: p.workdir.clone(),
        command: p.command.clone().unwrap_or_default(),
        description: p
            .description
            .clone()
            .unwrap_or_else(|| format!("warden agent {}", p.name)),
        tmux_socket: p.tmux_socket.clone().unwrap_or_else(|| p.name.clone()),
        tmux_path: p.tmux_path.clone(),
        env: p.env.clone().unwrap_or_default(),
        display_locale: p.display_locale.clone(),
        assistant_locale: p.assistant_locale.clone(),
        system_locale: p.system_locale.clone(),
        path: p.path.clone(),
        require: p.require.clone(),
        owner: p.owner.clone(),
        group: p.group.clone(),
        mode,
        script_path: Path::new(&p.rcd_dir).join(&p.name),
        rc_subr: p.rc_subr.clone(),
    })
}

fn string_params(p: &Params) -> Vec<(&'static str, &str)> {
    let mut out = vec![
        ("name", p.name.as_str()),
        ("system_locale", &p.system_locale),
        ("path", &p.path),
        ("tmux_path", &p.tmux_path),
    ];
    for (label, value) in [
        ("user", &p.user),
        ("workdir", &p.workdir),
        ("command", &p.command),
        ("description", &p.description),
        ("tmux_socket", &p.tmux_socket),
    ] {
        if let Some(v) = value {
            out.push((label, v));
        }
    }
    for value in p.env.iter().flat_map(|e| e.values()) {
        out.push(("an env value", value));
    }
    out
}

fn is_user_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= MAX_USER_LEN
        && matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The agent's system locale must be a UTF-8 locale spelled the FreeBSD way (the layout's
/// rule), and installed when the locale directory is there.
pub fn system_locale(locale: &str, locale_dir: &Path) -> Result<()> {
    rules::check_system_locale(locale).map_err(|problem| anyhow!(problem))?;
    if locale_dir.is_dir() && !locale_dir.join(locale).is_dir() {
        bail!(
            "system_locale {locale} is not installed on this host (no {})",
            locale_dir.join(locale).display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales() {
        let none = Path::new("/nonexistent");
        assert!(system_locale("sl_SI.UTF-8", none).is_ok());
        assert!(system_locale("C.UTF-8", none).is_ok());
        let msg = |l: &str| system_locale(l, none).unwrap_err().to_string();
        assert!(msg("en_US.utf8").contains("FreeBSD spells it en_US.UTF-8"));
        assert!(msg("en_US.utf-8").contains("FreeBSD spells it en_US.UTF-8"));
        assert!(msg("sl_SI.ISO8859-2").contains("legacy encodings"));
        assert!(msg("sl_SI").contains("legacy encodings"));
        assert!(msg("sl-SI.UTF-8").contains("not a locale name"));
        assert!(msg("").contains("not a locale name"));
    }

    #[test]
    fn installed_locale_is_required_when_the_directory_exists() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sl_SI.UTF-8")).unwrap();
        assert!(system_locale("sl_SI.UTF-8", dir.path()).is_ok());
        assert!(system_locale("de_DE.UTF-8", dir.path())
            .unwrap_err()
            .to_string()
            .contains("not installed"));
    }

    #[test]
    fn users() {
        assert!(is_user_name("mevy"));
        assert!(is_user_name("_pg.agent-1"));
        assert!(!is_user_name("Mevy"));
        assert!(!is_user_name("me vy"));
        assert!(!is_user_name(&"a".repeat(33)));
    }
}
