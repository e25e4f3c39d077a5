//! One agent's settings from inventory: the host's defaults (`warden_agent_defaults`)
//! under the agent's own entry (`warden_agents.<name>`), with `jails:` merged kind by kind
//! over the table's defaults. Types are checked the way Ansible reads them (booleans in
//! any of Ansible's spellings, numbers where a string is wanted); unknown settings and
//! kinds are problems, so a typo does not pass silently.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::rules::boolean;
use crate::table::{defaults, Kind, SETTINGS};

/// An agent's settings, every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// As given (checked by the layout, which knows the host).
    pub subnet_base: Option<String>,
    pub allow_public: bool,
    pub assistant_name: Option<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub command: String,
    pub display_locale: String,
    pub assistant_locale: String,
    pub system_locale: String,
    pub enabled: bool,
    pub started: bool,
    pub env: Map<String, Value>,
    pub env_extra: Map<String, Value>,
    /// Every kind of the table: whether it runs.
    pub jails: BTreeMap<&'static str, bool>,
    /// `<kind>_jail_name` overrides.
    pub jail_names: BTreeMap<&'static str, String>,
    pub shared_llm_jail: String,
    pub db_name: Option<String>,
    pub db_user: Option<String>,
    /// Whether `db_password` is given (its value never reaches the layout).
    pub db_password: bool,
}

impl Settings {
    /// Reads an agent's entry over the host's defaults; every problem goes to `problems`.
    pub fn parse(
        table: &[Kind],
        host_defaults: &Map<String, Value>,
        entry: &Value,
        problems: &mut Vec<String>,
    ) -> Settings {
        let empty = Map::new();
        let entry = match entry {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => {
                problems.push(
                    "its settings must be a dict with at least subnet_base, e.g. {subnet_base: 10.0.1}"
                        .into(),
                );
                &empty
            }
        };
        for (source, map) in [("warden_agent_defaults", host_defaults), ("", entry)] {
            for key in map.keys() {
                let known = SETTINGS.contains(&key.as_str())
                    || key
                        .strip_suffix("_jail_name")
                        .is_some_and(|kind| table.iter().any(|k| k.name == kind));
                if !known {
                    let place = if source.is_empty() {
                        String::new()
                    } else {
                        format!(" in {source}")
                    };
                    problems.push(format!(
                        "unknown setting '{key}'{place}; known: {}",
                        known_settings(table)
                    ));
                }
            }
        }
        if host_defaults.contains_key("db_password") {
            problems.push(
                "db_password is each agent's own: set it in the agent's entry, not in warden_agent_defaults"
                    .into(),
            );
        }
        let get = |key: &str| -> Option<&Value> {
            entry
                .get(key)
                .or_else(|| host_defaults.get(key))
                .filter(|v| !v.is_null())
        };
        let mut r = Reader { problems };
        let mut jails: BTreeMap<&'static str, bool> =
            table.iter().map(|k| (k.name, k.enabled)).collect();
        for map in [host_defaults, entry] {
            match map.get("jails") {
                None | Some(Value::Null) => {}
                Some(Value::Object(switches)) => {
                    for (kind, on) in switches {
                        match table.iter().find(|k| k.name == kind) {
                            None => r.problems.push(format!(
                                "jails: unknown jail kind '{kind}'; known: {}",
                                kind_names(table)
                            )),
                            Some(k) => match boolean(on) {
                                Some(b) => {
                                    jails.insert(k.name, b);
                                }
                                None => r.problems.push(format!(
                                    "jails.{kind} must be true or false, not {on}"
                                )),
                            },
                        }
                    }
                }
                Some(other) => r.problems.push(format!(
                    "jails must be a dict of jail kind: true/false, e.g. {{ollama: true}}, not {other}"
                )),
            }
        }
        let mut jail_names = BTreeMap::new();
        for kind in table {
            let key = format!("{}_jail_name", kind.name);
            if let Some(name) = r.string(&key, get(&key)) {
                jail_names.insert(kind.name, name);
            }
        }
        Settings {
            subnet_base: r.string("subnet_base", get("subnet_base")),
            allow_public: r.boolean("allow_public", get("allow_public"), false),
            assistant_name: r.string("assistant_name", get("assistant_name")),
            user: r.string("user", get("user")),
            workdir: r.string("workdir", get("workdir")),
            command: r
                .string("command", get("command"))
                .unwrap_or_else(|| defaults::COMMAND.into()),
            display_locale: r
                .string("display_locale", get("display_locale"))
                .unwrap_or_else(|| defaults::DISPLAY_LOCALE.into()),
            assistant_locale: r
                .string("assistant_locale", get("assistant_locale"))
                .unwrap_or_else(|| defaults::ASSISTANT_LOCALE.into()),
            system_locale: r
                .string("system_locale", get("system_locale"))
                .unwrap_or_else(|| defaults::SYSTEM_LOCALE.into()),
            enabled: r.boolean("enabled", get("enabled"), defaults::ENABLED),
            started: r.boolean("started", get("started"), defaults::STARTED),
            env: r.dict("env", get("env")),
            env_extra: r.dict("env_extra", get("env_extra")),
            jails,
            jail_names,
            shared_llm_jail: r
                .string("shared_llm_jail", get("shared_llm_jail"))
                .unwrap_or_default(),
            db_name: r.string("db_name", get("db_name")),
            db_user: r.string("db_user", get("db_user")),
            db_password: entry.get("db_password").is_some_and(|v| !v.is_null()),
        }
    }

    /// The kinds whose jail the agent runs itself, in table order: the enabled ones, less
    /// those a shared LLM jail stands in for.
    pub fn own_jails<'t>(&self, table: &'t [Kind]) -> Vec<&'t Kind> {
        table
            .iter()
            .filter(|k| self.jails.get(k.name).copied().unwrap_or(false))
            .filter(|k| !k.llm || self.shared_llm_jail.is_empty())
            .collect()
    }
}

fn known_settings(table: &[Kind]) -> String {
    let mut names: Vec<String> = SETTINGS.iter().map(|s| s.to_string()).collect();
    names.extend(table.iter().map(|k| format!("{}_jail_name", k.name)));
    names.join(", ")
}

/// The table's kind names, for messages.
pub fn kind_names(table: &[Kind]) -> String {
    table.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

struct Reader<'p> {
    problems: &'p mut Vec<String>,
}

impl Reader<'_> {
    /// A string setting; numbers read as their text, as Jinja would render them.
    fn string(&mut self, key: &str, value: Option<&Value>) -> Option<String> {
        match value? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.problems
                    .push(format!("{key} must be a string, not {other}"));
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, value: Option<&Value>, default: bool) -> bool {
        match value {
            None => default,
            Some(v) => boolean(v).unwrap_or_else(|| {
                self.problems
                    .push(format!("{key} must be true or false, not {v}"));
                default
            }),
        }
    }

    fn dict(&mut self, key: &str, value: Option<&Value>) -> Map<String, Value> {
        match value {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                self.problems
                    .push(format!("{key} must be a dict of NAME: value, not {other}"));
                Map::new()
            }
        }
    }
}
