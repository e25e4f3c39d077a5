//! The agent's layout as data. One row per jail kind in [`KINDS`]; the agent-wide `.env`
//! keys, the paths under the host prefix and the settings' defaults next to it. Adding a
//! jail kind is one row: its `jails:` switch, its `<kind>_jail_name` override, its
//! address, packages, services, `.env` keys and the shared-octet check all follow from it.
//!
//! The kinds, addresses, jail names and `.env` keys are the multi-agent deployment guide's
//! (git `.2`, cms `.3`, ollama or llama.cpp `.4`, db `.5`, gateway `.1` on the bridge).

/// One kind of service jail an agent can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The key in `jails:`, in the layout's `ip`/`jail` maps, and of the
    /// `<name>_jail_name` override.
    pub name: &'static str,
    /// How messages name it.
    pub label: &'static str,
    /// Appended to the agent name (after the separator) to name the jail.
    pub suffix: &'static str,
    /// The host octet of its address in the agent's /24. Kinds with the same octet are
    /// alternatives: an agent may run only one of them.
    pub octet: u8,
    /// Installed in the jail.
    pub packages: &'static [&'static str],
    /// Enabled and started in the jail.
    pub services: &'static [&'static str],
    /// `.env` key of its address.
    pub env_ip: &'static str,
    /// `.env` key of its jail name.
    pub env_jail: &'static str,
    /// Runs unless the agent's `jails:` says otherwise.
    pub enabled: bool,
    /// A `shared_llm_jail` stands in for it.
    pub llm: bool,
}

/// Every jail kind, in the order the jails are created.
#[rustfmt::skip]
pub const KINDS: &[Kind] = &[
    Kind { name: "git", label: "git", suffix: "git", octet: 2, packages: &["git"], services: &[], env_ip: "WARDEN_GIT_IP", env_jail: "GIT_JAIL_NAME", enabled: true, llm: false },
    Kind { name: "cms", label: "cms", suffix: "cms", octet: 3, packages: &["nginx"], services: &["nginx"], env_ip: "WARDEN_CMS_IP", env_jail: "CMS_JAIL_NAME", enabled: true, llm: false },
    Kind { name: "ollama", label: "ollama", suffix: "ollama", octet: 4, packages: &["ollama"], services: &["ollama"], env_ip: "WARDEN_OLLAMA_IP", env_jail: "OLLAMA_JAIL_NAME", enabled: false, llm: true },
    Kind { name: "llama_cpp", label: "llama.cpp", suffix: "llamacpp", octet: 4, packages: &["llama-cpp"], services: &["llama_server"], env_ip: "WARDEN_LLAMA_CPP_IP", env_jail: "LLAMA_CPP_JAIL_NAME", enabled: false, llm: true },
    // PostgreSQL needs `service postgresql initdb` once before it starts: left to the operator.
    Kind { name: "db", label: "db", suffix: "db", octet: 5, packages: &["postgresql16-server"], services: &[], env_ip: "WARDEN_DB_IP", env_jail: "DB_JAIL_NAME", enabled: true, llm: false },
];

/// The host octet of the agent's gateway, its address on the shared bridge.
pub const GATEWAY_OCTET: u8 = 1;
/// Every agent has a /24.
pub const PREFIX_LEN: u8 = 24;

/// A value of the agent that goes into its `.env` under a key of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    AssistantName,
    SubnetBase,
    Gateway,
    Subnet,
    DbName,
    DbUser,
    DisplayLocale,
    AssistantLocale,
    SystemLocale,
}

/// The `.env` keys that are not a jail kind's, in the deployment guide's order; each
/// kind's address and jail name keys come from [`KINDS`].
pub const AGENT_ENV: &[(&str, Field)] = &[
    ("AGENT_NAME", Field::Name),
    ("ASSISTANT_NAME", Field::AssistantName),
    ("AGENT_SUBNET_BASE", Field::SubnetBase),
    ("WARDEN_GATEWAY", Field::Gateway),
    ("WARDEN_SUBNET", Field::Subnet),
    ("WARDEN_DB_NAME", Field::DbName),
    ("WARDEN_DB_USER", Field::DbUser),
    ("DISPLAY_LOCALE", Field::DisplayLocale),
    ("ASSISTANT_LOCALE", Field::AssistantLocale),
    ("SYSTEM_LOCALE", Field::SystemLocale),
];

/// `.env` keys whose values are secrets, by what they hold. The layout names the key;
/// the value never passes through it.
pub const SECRET_ENV: &[(&str, &str)] = &[("db_password", "WARDEN_DB_PASSWORD")];

/// The agent's service environment always carries these (then its `env` setting).
pub const SERVICE_ENV: &[(&str, Field)] = &[
    ("AGENT_NAME", Field::Name),
    ("ASSISTANT_NAME", Field::AssistantName),
];

/// FreeBSD paths the modules are given, each under the host prefix (`warden_root`).
pub const PATHS: &[(&str, &str)] = &[
    ("rcd_dir", "/usr/local/etc/rc.d"),
    ("rc_conf", "/etc/rc.conf"),
    ("rc_conf_local", "/etc/rc.conf.local"),
    ("rc_subr", "/etc/rc.subr"),
    ("locale_dir", "/usr/share/locale"),
    ("pf_conf", "/etc/pf.conf"),
    ("pf_include", "/etc/pf.warden.conf"),
    ("bastille_prefix", "/usr/local/bastille"),
    ("bastille_conf", "/usr/local/etc/bastille/bastille.conf"),
    ("lock_file", "/var/run/warden.lock"),
];

/// Path lists of the host under the same prefix: the `rc.conf.d` directories rc.subr's
/// `load_rc_config` reads (libexec/rc/rc.subr; docs/freebsd-facts.md §8), and the
/// `trusted_links` a module may follow on the way to a file: `/home` is a link to `usr/home`
/// on hosts whose first user was made with `pw useradd -m` while `/home` did not exist
/// (freebsd-src usr.sbin/pw/pw_user.c creates the home base under /usr and links it), so
/// the agent's `.env` under /home is reached through it; only root can change that link.
pub const PATH_LISTS: &[(&str, &[&str])] = &[
    ("rc_conf_d", &["/etc/rc.conf.d", "/usr/local/etc/rc.conf.d"]),
    ("trusted_links", &["/home"]),
];

/// Settings an agent gets when neither its entry nor the host's defaults give them.
pub mod defaults {
    pub const COMMAND: &str = "npm start";
    pub const DISPLAY_LOCALE: &str = "en-US";
    pub const ASSISTANT_LOCALE: &str = "en-US";
    pub const SYSTEM_LOCALE: &str = "en_US.UTF-8";
    pub const ENABLED: bool = true;
    pub const STARTED: bool = true;
}

/// The setting names an agent's entry may hold besides each kind's `<kind>_jail_name`.
pub const SETTINGS: &[&str] = &[
    "subnet_base",
    "allow_public",
    "assistant_name",
    "user",
    "workdir",
    "command",
    "display_locale",
    "assistant_locale",
    "system_locale",
    "enabled",
    "started",
    "env",
    "env_extra",
    "jails",
    "shared_llm_jail",
    "db_name",
    "db_user",
    "db_password",
];
