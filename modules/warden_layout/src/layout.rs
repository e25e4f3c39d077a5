//! Derivation: from the host's agents, the agent's name, its subnet base, its overrides and
//! the host's Bastille version to the [`Layout`] every role reads (the `warden_agent`
//! fact), after every check — all problems reported at once, nothing derived when there
//! is one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use warden_runtime::bastille;
use warden_runtime::ipv4;

use crate::rules::{
    check_agent_name, check_language_tag, check_private, check_system_locale, parse_subnet_base,
};
use crate::settings::{kind_names, Settings};
use crate::table::{
    Field, Kind, AGENT_ENV, GATEWAY_OCTET, PATHS, PATH_LISTS, PREFIX_LEN, SECRET_ENV, SERVICE_ENV,
};

/// What the layout is derived from: one host's agents and settings (the `warden_agent`
/// role's variables) and what the host said about itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// The agent to derive.
    pub agent: String,
    /// The host's name (for messages).
    pub host: String,
    /// Every agent of the host: name → settings (`warden_agents`).
    #[serde(deserialize_with = "dict")]
    pub agents: Map<String, Value>,
    /// Settings every agent of the host gets unless its entry overrides them
    /// (`warden_agent_defaults`).
    #[serde(default, deserialize_with = "dict")]
    pub defaults: Map<String, Value>,
    /// What `bastille -v` printed on the host (stdout and stderr).
    #[serde(default, deserialize_with = "text")]
    pub bastille_version: String,
    /// Between the agent name and the kind in jail names: `auto` picks by version.
    #[serde(deserialize_with = "text")]
    pub jail_separator: String,
    /// Per kind: another jail-name suffix (`warden_jail_suffixes`).
    #[serde(default, deserialize_with = "dict")]
    pub jail_suffixes: Map<String, Value>,
    /// Per kind: other packages (`warden_jails_packages`).
    #[serde(default, deserialize_with = "dict")]
    pub packages: Map<String, Value>,
    /// Per kind: other services (`warden_jails_services`).
    #[serde(default, deserialize_with = "dict")]
    pub services: Map<String, Value>,
    /// Where generated secrets are kept on the controller (`warden_secrets_dir`).
    #[serde(deserialize_with = "text")]
    pub secrets_dir: String,
    #[serde(deserialize_with = "text")]
    pub bridge: String,
    #[serde(deserialize_with = "text")]
    pub ext_if: String,
    /// Prefix of every FreeBSD path (`warden_root`).
    #[serde(deserialize_with = "text")]
    pub root: String,
    #[serde(deserialize_with = "text")]
    pub file_owner: String,
    #[serde(deserialize_with = "text")]
    pub file_group: String,
    #[serde(deserialize_with = "text")]
    pub tmux_path: String,
    #[serde(deserialize_with = "text")]
    pub tmux_socket_dir: String,
}

/// Strings as Ansible templates them: null (an empty YAML value) is empty, numbers are
/// their text.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, not {other}"
        ))),
    }
}

/// Dicts as Ansible templates them: null (an empty YAML value) is empty.
fn dict<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => Err(serde::de::Error::custom(format!(
            "expected a dict, not {other}"
        ))),
    }
}

/// The agent's layout: the `warden_agent` fact. Its keys are what the roles read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    pub name: String,
    pub assistant_name: String,
    pub subnet_base: String,
    /// `10.0.1.0/24`
    pub subnet: String,
    /// `10.0.1.1`, the agent's address on the bridge.
    pub gateway: String,
    /// `10.0.1.1/24`
    pub gateway_cidr: String,
    pub bridge: String,
    pub ext_if: String,
    /// Each kind's address, `10.0.1.2`.
    pub ip: BTreeMap<String, String>,
    /// Each kind's address with the prefix, `10.0.1.2/24`.
    pub ip_cidr: BTreeMap<String, String>,
    /// The version line `bastille -v` printed.
    pub bastille_version: String,
    /// Each kind's jail name.
    pub jail: BTreeMap<String, String>,
    /// Each kind: whether it is enabled.
    pub jails_enabled: BTreeMap<String, bool>,
    /// The kinds whose jails the agent runs itself, in creation order.
    pub jail_kinds: Vec<String>,
    /// Each kind's packages.
    pub packages: BTreeMap<String, Vec<String>>,
    /// Each kind's services.
    pub services: BTreeMap<String, Vec<String>>,
    pub shared_llm_jail: String,
    pub db: Db,
    pub locale: Locale,
    pub env_extra: Map<String, Value>,
    /// The `.env` file's values (all but the secrets), `env_extra` included.
    pub env_file: Map<String, Value>,
    /// The `.env` keys of the secrets, by what they hold (`db_password`).
    pub env_secret_keys: BTreeMap<String, String>,
    pub service: Service,
    pub files: Files,
    pub paths: BTreeMap<String, Value>,
    /// Anything else a play added to the fact, kept as it is.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Db {
    pub name: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Locale {
    pub display: String,
    pub assistant: String,
    pub system: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub user: String,
    pub workdir: String,
    pub command: String,
    pub enabled: bool,
    pub started: bool,
    pub tmux_path: String,
    pub tmux_socket: String,
    pub env: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Files {
    pub owner: String,
    pub group: String,
}

/// Why there is no layout: the message users see, and each problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub msg: String,
    pub problems: Vec<String>,
}

impl Failure {
    pub fn new(msg: String) -> Failure {
        Failure {
            problems: vec![msg.clone()],
            msg,
        }
    }
}

/// Host-wide overrides per kind, checked.
struct Overrides {
    suffixes: BTreeMap<&'static str, String>,
    packages: BTreeMap<&'static str, Vec<String>>,
    services: BTreeMap<&'static str, Vec<String>>,
}

impl Overrides {
    fn read(host: &Host, table: &[Kind], problems: &mut Vec<String>) -> Overrides {
        let mut kind_of = |var: &str, key: &str| -> Option<&'static str> {
            let found = table.iter().find(|k| k.name == key).map(|k| k.name);
            if found.is_none() {
                problems.push(format!(
                    "{var}: unknown jail kind '{key}'; known: {}",
                    kind_names(table)
                ));
            }
            found
        };
        let mut suffixes = BTreeMap::new();
        let mut bad = Vec::new();
        for (key, value) in &host.jail_suffixes {
            if let Some(kind) = kind_of("warden_jail_suffixes", key) {
                match value {
                    Value::String(s) => {
                        suffixes.insert(kind, s.clone());
                    }
                    other => bad.push(format!(
                        "warden_jail_suffixes.{key} must be a string, not {other}"
                    )),
                }
            }
        }
        let mut lists = |var: &str, map: &Map<String, Value>, bad: &mut Vec<String>| {
            let mut out = BTreeMap::new();
            for (key, value) in map {
                if let Some(kind) = kind_of(var, key) {
                    let list = value.as_array().and_then(|items| {
                        items
                            .iter()
                            .map(|i| i.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                    });
                    match list {
                        Some(list) => {
                            out.insert(kind, list);
                        }
                        None => {
                            bad.push(format!("{var}.{key} must be a list of names, not {value}"))
                        }
                    }
                }
            }
            out
        };
        let packages = lists("warden_jails_packages", &host.packages, &mut bad);
        let services = lists("warden_jails_services", &host.services, &mut bad);
        problems.extend(bad);
        Overrides {
            suffixes,
            packages,
            services,
        }
    }

    fn suffix<'a>(&'a self, kind: &'a Kind) -> &'a str {
        self.suffixes
            .get(kind.name)
            .map_or(kind.suffix, String::as_str)
    }
}

/// The agent's jail name for a kind: its override, else `<agent><separator><suffix>`.
fn jail_name(agent: &str, s: &Settings, kind: &Kind, sep: &str, o: &Overrides) -> String {
    s.jail_names
        .get(kind.name)
        .cloned()
        .unwrap_or_else(|| format!("{agent}{sep}{}", o.suffix(kind)))
}

/// Jinja's `capitalize`: the first character upper-case, the rest lower-case.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Derives the agent's layout from the host's agents with the given kinds table
/// ([`crate::KINDS`] in production).
pub fn derive(host: &Host, table: &[Kind]) -> Result<Layout, Failure> {
    let agent = host.agent.as_str();
    let Some(entry) = host.agents.get(agent) else {
        let mut known: Vec<&str> = host.agents.keys().map(String::as_str).collect();
        known.sort_unstable();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(Failure::new(format!(
            "agent '{agent}' is not defined on {}; known agents: {known}",
            host.host
        )));
    };
    let mut problems = Vec::new();
    if let Err(p) = check_agent_name(agent) {
        problems.push(p);
    }
    let s = Settings::parse(table, &host.defaults, entry, &mut problems);

    let net = match s.subnet_base.as_deref() {
        None => {
            problems.push(
                "subnet_base is required: the first three octets of the agent's /24, e.g. 10.0.1"
                    .into(),
            );
            None
        }
        Some(base) => match parse_subnet_base(base) {
            Ok(net) => {
                if let Err(p) = check_private(format!("subnet_base {base}"), &net, s.allow_public) {
                    problems.push(p);
                }
                Some(net)
            }
            Err(p) => {
                problems.push(p);
                None
            }
        },
    };
    let base_text = s.subnet_base.clone().unwrap_or_default();

    // The host's other agents, as far as they can be read (their own problems are
    // reported when they are provisioned).
    let others: Vec<(&str, Settings)> = host
        .agents
        .iter()
        .filter(|(name, _)| name.as_str() != agent)
        .map(|(name, e)| {
            (
                name.as_str(),
                Settings::parse(table, &host.defaults, e, &mut Vec::new()),
            )
        })
        .collect();
    if let Some(net) = net {
        let sharing: Vec<&str> = others
            .iter()
            .filter(|(_, o)| {
                o.subnet_base
                    .as_deref()
                    .and_then(|b| parse_subnet_base(b).ok())
                    == Some(net)
            })
            .map(|(name, _)| *name)
            .collect();
        if !sharing.is_empty() {
            problems.push(format!(
                "subnet_base {base_text} is used by another agent on {} ({}); each agent needs its own /24",
                host.host,
                sharing.join(", ")
            ));
        }
    }

    // Kinds that share a host octet are alternatives.
    let own = s.own_jails(table);
    let mut by_octet: BTreeMap<u8, Vec<&Kind>> = BTreeMap::new();
    for kind in &own {
        by_octet.entry(kind.octet).or_default().push(kind);
    }
    for (octet, kinds) in by_octet.iter().filter(|(_, k)| k.len() > 1) {
        let labels: Vec<&str> = kinds.iter().map(|k| k.label).collect();
        let verb = if kinds.len() == 2 { "both" } else { "all" };
        let shared = if kinds.iter().all(|k| k.llm) {
            ", or use shared_llm_jail"
        } else {
            ""
        };
        problems.push(format!(
            "the {} jails would {verb} take {base_text}.{octet}; enable one of them{shared}",
            and_list(&labels)
        ));
    }

    if let Err(p) = check_system_locale(&s.system_locale) {
        problems.push(p);
    }
    for (label, tag) in [
        ("display_locale", &s.display_locale),
        ("assistant_locale", &s.assistant_locale),
    ] {
        if let Err(p) = check_language_tag(label, tag) {
            problems.push(p);
        }
    }
    if !s.db_password && host.secrets_dir.contains("/ansible_collections/") {
        problems.push(format!(
            "generated passwords would be kept in {}, inside an installed collection (lost when it is reinstalled); set warden_secrets_dir, or the agent's db_password",
            host.secrets_dir
        ));
    }

    let overrides = Overrides::read(host, table, &mut problems);
    let version = bastille::parse_version_output(&host.bastille_version);
    let separator = if host.jail_separator == "auto" {
        match &version {
            Ok((v, _)) if v.forbids_dash_in_vnet_names() => "",
            Ok(_) => "-",
            Err(e) => {
                problems.push(format!(
                    "cannot choose the jail-name separator: {e:#}; set warden_jail_separator ('-' or '')"
                ));
                "-"
            }
        }
    } else {
        host.jail_separator.as_str()
    };

    // Jail names: unique on the host.
    let names: Vec<(&Kind, String)> = own
        .iter()
        .map(|k| (*k, jail_name(agent, &s, k, separator, &overrides)))
        .collect();
    for (i, (kind, name)) in names.iter().enumerate() {
        if let Some((first, _)) = names[..i].iter().find(|(_, n)| n == name) {
            problems.push(format!(
                "the {} and {} jails would both be named {name}; override one of their *_jail_name",
                first.label, kind.label
            ));
        }
    }
    let mut clashes = Vec::new();
    for (kind, name) in &names {
        for (other, o) in &others {
            for k in o.own_jails(table) {
                if jail_name(other, o, k, separator, &overrides) == *name {
                    clashes.push(format!(
                        "{name} ({other}'s {} jail, this agent's {})",
                        k.label, kind.label
                    ));
                }
            }
        }
    }
    if !clashes.is_empty() {
        problems.push(format!(
            "two agents on {} would share the jail name(s) {}; override one agent's *_jail_name",
            host.host,
            clashes.join(", ")
        ));
    }

    let Some(net) = net.filter(|_| problems.is_empty()) else {
        return Err(Failure {
            msg: format!("agent {agent}: {}", problems.join("; ")),
            problems,
        });
    };

    let [a, b, c, _] = net.network().octets();
    let address = |octet: u8| Ipv4Addr::new(a, b, c, octet);
    let cidr = |octet: u8| format!("{}/{PREFIX_LEN}", address(octet));
    let kinds = |f: &dyn Fn(&Kind) -> String| -> BTreeMap<String, String> {
        table.iter().map(|k| (k.name.to_string(), f(k))).collect()
    };
    let user = s.user.clone().unwrap_or_else(|| agent.to_string());
    let assistant_name = s
        .assistant_name
        .clone()
        .unwrap_or_else(|| capitalize(agent));
    let mut layout = Layout {
        name: agent.to_string(),
        assistant_name: assistant_name.clone(),
        subnet_base: base_text,
        subnet: net.to_string(),
        gateway: address(GATEWAY_OCTET).to_string(),
        gateway_cidr: cidr(GATEWAY_OCTET),
        bridge: host.bridge.clone(),
        ext_if: host.ext_if.clone(),
        ip: kinds(&|k| address(k.octet).to_string()),
        ip_cidr: kinds(&|k| cidr(k.octet)),
        bastille_version: match &version {
            Ok((_, line)) => line.clone(),
            Err(_) => host.bastille_version.trim().to_string(),
        },
        jail: kinds(&|k| jail_name(agent, &s, k, separator, &overrides)),
        jails_enabled: table
            .iter()
            .map(|k| {
                (
                    k.name.to_string(),
                    s.jails.get(k.name).copied().unwrap_or(false),
                )
            })
            .collect(),
        jail_kinds: own.iter().map(|k| k.name.to_string()).collect(),
        packages: table
            .iter()
            .map(|k| {
                let list = overrides.packages.get(k.name).cloned();
                (
                    k.name.to_string(),
                    list.unwrap_or_else(|| k.packages.iter().map(|p| p.to_string()).collect()),
                )
            })
            .collect(),
        services: table
            .iter()
            .map(|k| {
                let list = overrides.services.get(k.name).cloned();
                (
                    k.name.to_string(),
                    list.unwrap_or_else(|| k.services.iter().map(|p| p.to_string()).collect()),
                )
            })
            .collect(),
        shared_llm_jail: s.shared_llm_jail.clone(),
        db: Db {
            name: s.db_name.clone().unwrap_or_else(|| agent.to_string()),
            user: s.db_user.clone().unwrap_or_else(|| agent.to_string()),
        },
        locale: Locale {
            display: s.display_locale.clone(),
            assistant: s.assistant_locale.clone(),
            system: s.system_locale.clone(),
        },
        env_extra: s.env_extra.clone(),
        env_file: Map::new(),
        env_secret_keys: SECRET_ENV
            .iter()
            .map(|(what, key)| (what.to_string(), key.to_string()))
            .collect(),
        service: Service {
            name: agent.to_string(),
            workdir: s
                .workdir
                .clone()
                .unwrap_or_else(|| format!("/home/{user}/{agent}")),
            user,
            command: s.command.clone(),
            enabled: s.enabled,
            started: s.started,
            tmux_path: host.tmux_path.clone(),
            tmux_socket: if host.tmux_socket_dir.is_empty() {
                agent.to_string()
            } else {
                format!("{}/{agent}.tmux", host.tmux_socket_dir)
            },
            env: Map::new(),
        },
        files: Files {
            owner: host.file_owner.clone(),
            group: host.file_group.clone(),
        },
        paths: PATHS
            .iter()
            .map(|(name, path)| {
                (
                    name.to_string(),
                    Value::String(format!("{}{path}", host.root)),
                )
            })
            .chain(PATH_LISTS.iter().map(|(name, paths)| {
                let list = paths
                    .iter()
                    .map(|p| Value::String(format!("{}{p}", host.root)));
                (name.to_string(), Value::Array(list.collect()))
            }))
            .collect(),
        other: Map::new(),
    };
    let mut env: Map<String, Value> = SERVICE_ENV
        .iter()
        .map(|(key, field)| (key.to_string(), Value::String(layout.field(*field))))
        .collect();
    env.extend(s.env.clone());
    layout.service.env = env;
    layout.env_file = env_file(&layout, table);
    Ok(layout)
}

impl Layout {
    /// An agent-wide value, as the `.env` and the service environment carry it.
    pub fn field(&self, field: Field) -> String {
        match field {
            Field::Name => self.name.clone(),
            Field::AssistantName => self.assistant_name.clone(),
            Field::SubnetBase => self.subnet_base.clone(),
            Field::Gateway => self.gateway.clone(),
            Field::Subnet => self.subnet.clone(),
            Field::DbName => self.db.name.clone(),
            Field::DbUser => self.db.user.clone(),
            Field::DisplayLocale => self.locale.display.clone(),
            Field::AssistantLocale => self.locale.assistant.clone(),
            Field::SystemLocale => self.locale.system.clone(),
        }
    }
}

/// The `.env` values: the agent-wide keys, each kind's address and jail name (a shared
/// LLM jail's name for the kinds it stands in for), then `env_extra` over them.
pub fn env_file(layout: &Layout, table: &[Kind]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, field) in AGENT_ENV {
        out.insert(key.to_string(), Value::String(layout.field(*field)));
    }
    for kind in table {
        let ip = layout.ip.get(kind.name).cloned().unwrap_or_default();
        let jail = if kind.llm && !layout.shared_llm_jail.is_empty() {
            layout.shared_llm_jail.clone()
        } else {
            layout.jail.get(kind.name).cloned().unwrap_or_default()
        };
        out.insert(kind.env_ip.to_string(), Value::String(ip));
        out.insert(kind.env_jail.to_string(), Value::String(jail));
    }
    out.extend(layout.env_extra.clone());
    out
}

/// Points the kinds a shared LLM jail stands in for at that jail's address (`ip`, as
/// `bastille_jail` reports it: `10.0.9.4/24`), the `.env` included.
pub fn use_shared_llm(mut layout: Layout, ip: &str, table: &[Kind]) -> Result<Layout, Failure> {
    let net: Ipv4Net = ipv4::parse_cidr(ip.trim()).map_err(|e| {
        Failure::new(format!(
            "the shared LLM jail {}'s address: {e:#}",
            layout.shared_llm_jail
        ))
    })?;
    for kind in table.iter().filter(|k| k.llm) {
        layout
            .ip
            .insert(kind.name.to_string(), net.addr().to_string());
        layout
            .ip_cidr
            .insert(kind.name.to_string(), net.to_string());
    }
    layout.env_file = env_file(&layout, table);
    Ok(layout)
}
