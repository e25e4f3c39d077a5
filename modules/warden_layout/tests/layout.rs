//! The layout, table-driven: derivation (the guide's layout, each override, the separator
//! per Bastille version), every validation problem with the message users see, all of them
//! at once, a new jail kind as one row, the shared LLM jail, and the binary's protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly where module code may not

use serde_json::{json, Value};

use warden_layout::{derive, use_shared_llm, Host, Kind, Layout, KINDS};

/// A host with `agents`, deriving `agent`; `more` overrides the host-level inputs.
fn host(agent: &str, agents: Value, more: Value) -> Host {
    let mut input = json!({
        "agent": agent,
        "host": "sim1",
        "agents": agents,
        "bastille_version": "1.0.1\n",
        "jail_separator": "auto",
        "secrets_dir": "/home/op/warden/secrets",
        "bridge": "warden0",
        "ext_if": "",
        "root": "",
        "file_owner": "root",
        "file_group": "wheel",
        "tmux_path": "/usr/local/bin/tmux",
        "tmux_socket_dir": "",
    });
    for (k, v) in more.as_object().unwrap() {
        input[k] = v.clone();
    }
    serde_json::from_value(input).unwrap()
}

/// mevy's entry: subnet base 10.0.1 and `settings`.
fn entry(settings: Value) -> Value {
    let mut entry = json!({"subnet_base": "10.0.1"});
    for (k, v) in settings.as_object().unwrap() {
        entry[k] = v.clone();
    }
    entry
}

fn mevy(settings: Value) -> Host {
    host("mevy", json!({ "mevy": entry(settings) }), json!({}))
}

fn layout(h: &Host) -> Value {
    match derive(h, KINDS) {
        Ok(l) => serde_json::to_value(l).unwrap(),
        Err(f) => panic!("no layout: {}", f.msg),
    }
}

/// The value at a dotted path of the layout.
fn at<'v>(v: &'v Value, path: &str) -> &'v Value {
    path.split('.').fold(v, |v, key| &v[key])
}

#[test]
fn derives_the_guides_layout_with_every_key_the_roles_read() {
    let got = layout(&host(
        "mevy",
        json!({"mevy": {"subnet_base": "10.0.1", "system_locale": "sl_SI.UTF-8", "display_locale": "sl-SI"}}),
        json!({"bastille_version": "1.4.4\n", "root": "/sim"}),
    ));
    let ips = json!({"git": "10.0.1.2", "cms": "10.0.1.3", "ollama": "10.0.1.4", "llama_cpp": "10.0.1.4", "db": "10.0.1.5"});
    let want = json!({
        "name": "mevy",
        "assistant_name": "Mevy",
        "subnet_base": "10.0.1",
        "subnet": "10.0.1.0/24",
        "gateway": "10.0.1.1",
        "gateway_cidr": "10.0.1.1/24",
        "bridge": "warden0",
        "ext_if": "",
        "ip": ips,
        "ip_cidr": {"git": "10.0.1.2/24", "cms": "10.0.1.3/24", "ollama": "10.0.1.4/24", "llama_cpp": "10.0.1.4/24", "db": "10.0.1.5/24"},
        "bastille_version": "1.4.4",
        "jail": {"git": "mevygit", "cms": "mevycms", "ollama": "mevyollama", "llama_cpp": "mevyllamacpp", "db": "mevydb"},
        "jails_enabled": {"git": true, "cms": true, "ollama": false, "llama_cpp": false, "db": true},
        "jail_kinds": ["git", "cms", "db"],
        "packages": {"git": ["git"], "cms": ["nginx"], "ollama": ["ollama"], "llama_cpp": ["llama-cpp"], "db": ["postgresql16-server"]},
        "services": {"git": [], "cms": ["nginx"], "ollama": ["ollama"], "llama_cpp": ["llama_server"], "db": []},
        "shared_llm_jail": "",
        "db": {"name": "mevy", "user": "mevy"},
        "locale": {"display": "sl-SI", "assistant": "en-US", "system": "sl_SI.UTF-8"},
        "env_extra": {},
        "env_file": {
            "AGENT_NAME": "mevy", "ASSISTANT_NAME": "Mevy", "AGENT_SUBNET_BASE": "10.0.1",
            "WARDEN_GATEWAY": "10.0.1.1", "WARDEN_SUBNET": "10.0.1.0/24",
            "WARDEN_GIT_IP": "10.0.1.2", "WARDEN_CMS_IP": "10.0.1.3", "WARDEN_OLLAMA_IP": "10.0.1.4",
            "WARDEN_LLAMA_CPP_IP": "10.0.1.4", "WARDEN_DB_IP": "10.0.1.5",
            "GIT_JAIL_NAME": "mevygit", "CMS_JAIL_NAME": "mevycms", "OLLAMA_JAIL_NAME": "mevyollama",
            "LLAMA_CPP_JAIL_NAME": "mevyllamacpp", "DB_JAIL_NAME": "mevydb",
            "WARDEN_DB_NAME": "mevy", "WARDEN_DB_USER": "mevy",
            "DISPLAY_LOCALE": "sl-SI", "ASSISTANT_LOCALE": "en-US", "SYSTEM_LOCALE": "sl_SI.UTF-8",
        },
        "env_secret_keys": {"db_password": "WARDEN_DB_PASSWORD"},
        "service": {
            "name": "mevy", "user": "mevy", "workdir": "/home/mevy/mevy", "command": "npm start",
            "enabled": true, "started": true, "tmux_path": "/usr/local/bin/tmux", "tmux_socket": "mevy",
            "env": {"AGENT_NAME": "mevy", "ASSISTANT_NAME": "Mevy"},
        },
        "files": {"owner": "root", "group": "wheel"},
        "paths": {
            "rcd_dir": "/sim/usr/local/etc/rc.d", "rc_conf": "/sim/etc/rc.conf", "rc_subr": "/sim/etc/rc.subr",
            "locale_dir": "/sim/usr/share/locale", "pf_conf": "/sim/etc/pf.conf", "pf_include": "/sim/etc/pf.warden.conf",
            "bastille_prefix": "/sim/usr/local/bastille", "lock_file": "/sim/var/run/warden.lock",
            "rc_conf_local": "/sim/etc/rc.conf.local",
            "bastille_conf": "/sim/usr/local/etc/bastille/bastille.conf",
            "rc_conf_d": ["/sim/etc/rc.conf.d", "/sim/usr/local/etc/rc.conf.d"],
            "trusted_links": ["/sim/home"],
        },
    });
    assert_eq!(got, want);
}

#[test]
fn the_jail_name_separator_follows_the_bastille_version() {
    // The guide's '-' before Bastille 1.1; none from 1.1, which refuses '-' and '_' in VNET
    // names (the runtime's bastille::Version::forbids_dash_in_vnet_names).
    for (version, separator, git, reported) in [
        ("1.0.1\n", "auto", "mevy-git", "1.0.1"),
        ("0.14.20250420\n", "auto", "mevy-git", "0.14.20250420"),
        ("1.1.0\n", "auto", "mevygit", "1.1.0"),
        ("\n1.4.4\r\n", "auto", "mevygit", "1.4.4"),
        ("", "-", "mevy-git", ""),
        ("bastille: not found", "", "mevygit", "bastille: not found"),
        ("1.4.4", "_", "mevy_git", "1.4.4"),
    ] {
        let h = host(
            "mevy",
            json!({"mevy": {"subnet_base": "10.0.1"}}),
            json!({"bastille_version": version, "jail_separator": separator}),
        );
        let got = layout(&h);
        assert_eq!(got["jail"]["git"], git, "{version:?} {separator:?}");
        assert_eq!(got["env_file"]["GIT_JAIL_NAME"], git);
        assert_eq!(got["bastille_version"], reported);
    }
}

#[test]
fn each_setting_and_override_lands_where_the_roles_read_it() {
    for (settings, more, path, want) in [
        (
            json!({"assistant_name": "Mevy Bot"}),
            json!({}),
            "assistant_name",
            json!("Mevy Bot"),
        ),
        (
            json!({"assistant_name": "Mevy Bot"}),
            json!({}),
            "service.env.ASSISTANT_NAME",
            json!("Mevy Bot"),
        ),
        (
            json!({"assistant_name": "Mevy Bot"}),
            json!({}),
            "env_file.ASSISTANT_NAME",
            json!("Mevy Bot"),
        ),
        (
            json!({"user": "agent"}),
            json!({}),
            "service.workdir",
            json!("/home/agent/mevy"),
        ),
        (
            json!({"user": "agent", "workdir": "/srv/mevy"}),
            json!({}),
            "service.workdir",
            json!("/srv/mevy"),
        ),
        (
            json!({"user": 1001}),
            json!({}),
            "service.user",
            json!("1001"),
        ),
        (
            json!({"command": "node ."}),
            json!({}),
            "service.command",
            json!("node ."),
        ),
        (
            json!({"enabled": "no", "started": "off"}),
            json!({}),
            "service.enabled",
            json!(false),
        ),
        (
            json!({"enabled": "no", "started": "off"}),
            json!({}),
            "service.started",
            json!(false),
        ),
        (
            json!({"db_name": "mevy_db", "db_user": "mevy_app"}),
            json!({}),
            "env_file.WARDEN_DB_NAME",
            json!("mevy_db"),
        ),
        (
            json!({"db_name": "mevy_db", "db_user": "mevy_app"}),
            json!({}),
            "db.user",
            json!("mevy_app"),
        ),
        (
            json!({"cms_jail_name": "mevy-cms"}),
            json!({}),
            "jail.cms",
            json!("mevy-cms"),
        ),
        (
            json!({"cms_jail_name": "mevy-cms"}),
            json!({}),
            "env_file.CMS_JAIL_NAME",
            json!("mevy-cms"),
        ),
        (
            json!({"jails": {"ollama": true}}),
            json!({}),
            "jail_kinds",
            json!(["git", "cms", "ollama", "db"]),
        ),
        (
            json!({"jails": {"cms": "no", "llama_cpp": true}}),
            json!({}),
            "jail_kinds",
            json!(["git", "llama_cpp", "db"]),
        ),
        (
            json!({"jails": {"ollama": true}}),
            json!({}),
            "jails_enabled.ollama",
            json!(true),
        ),
        (
            json!({"jails": {"ollama": true, "llama_cpp": true}, "shared_llm_jail": "llm"}),
            json!({}),
            "jail_kinds",
            json!(["git", "cms", "db"]),
        ),
        (
            json!({"shared_llm_jail": "llm"}),
            json!({}),
            "env_file.OLLAMA_JAIL_NAME",
            json!("llm"),
        ),
        (
            json!({"shared_llm_jail": "llm"}),
            json!({}),
            "env_file.LLAMA_CPP_JAIL_NAME",
            json!("llm"),
        ),
        (
            json!({"shared_llm_jail": "llm"}),
            json!({}),
            "jail.ollama",
            json!("mevy-ollama"),
        ),
        (
            json!({"env": {"PORT": 8080}}),
            json!({}),
            "service.env",
            json!({"AGENT_NAME": "mevy", "ASSISTANT_NAME": "Mevy", "PORT": 8080}),
        ),
        (
            json!({"env_extra": {"API_URL": "http://x", "WARDEN_DB_IP": "10.9.9.9"}}),
            json!({}),
            "env_file.API_URL",
            json!("http://x"),
        ),
        (
            json!({"env_extra": {"WARDEN_DB_IP": "10.9.9.9"}}),
            json!({}),
            "env_file.WARDEN_DB_IP",
            json!("10.9.9.9"),
        ),
        (
            json!({"env_extra": {"A": "b"}}),
            json!({}),
            "env_extra",
            json!({"A": "b"}),
        ),
        (
            json!({"subnet_base": "8.8.8", "allow_public": true}),
            json!({}),
            "gateway",
            json!("8.8.8.1"),
        ),
        (
            json!({"subnet_base": "172.31.255"}),
            json!({}),
            "ip.db",
            json!("172.31.255.5"),
        ),
        (
            json!({}),
            json!({"tmux_socket_dir": "/var/run/warden"}),
            "service.tmux_socket",
            json!("/var/run/warden/mevy.tmux"),
        ),
        (
            json!({}),
            json!({"ext_if": "vtnet0", "bridge": "br9"}),
            "ext_if",
            json!("vtnet0"),
        ),
        (
            json!({}),
            json!({"ext_if": "vtnet0", "bridge": "br9"}),
            "bridge",
            json!("br9"),
        ),
        (json!({}), json!({"ext_if": null}), "ext_if", json!("")),
        (
            json!({}),
            json!({"file_owner": "op", "file_group": "staff"}),
            "files",
            json!({"owner": "op", "group": "staff"}),
        ),
        (
            json!({}),
            json!({"jail_suffixes": {"cms": "web"}}),
            "jail.cms",
            json!("mevy-web"),
        ),
        (
            json!({}),
            json!({"packages": {"cms": ["nginx", "php83"]}}),
            "packages.cms",
            json!(["nginx", "php83"]),
        ),
        (
            json!({}),
            json!({"packages": {"cms": ["nginx", "php83"]}}),
            "packages.git",
            json!(["git"]),
        ),
        (
            json!({}),
            json!({"services": {"db": ["postgresql"]}}),
            "services.db",
            json!(["postgresql"]),
        ),
        // The host's defaults sit under the agent's entry; jails merge kind by kind.
        (
            json!({}),
            json!({"defaults": {"command": "bun run", "jails": {"ollama": true}}}),
            "service.command",
            json!("bun run"),
        ),
        (
            json!({"jails": {"cms": false}}),
            json!({"defaults": {"jails": {"ollama": true}}}),
            "jail_kinds",
            json!(["git", "ollama", "db"]),
        ),
        (
            json!({"command": "own"}),
            json!({"defaults": {"command": "bun run"}}),
            "service.command",
            json!("own"),
        ),
        (
            json!({"system_locale": null}),
            json!({}),
            "locale.system",
            json!("en_US.UTF-8"),
        ),
    ] {
        let h = host(
            "mevy",
            json!({ "mevy": entry(settings.clone()) }),
            more.clone(),
        );
        let got = layout(&h);
        assert_eq!(at(&got, path), &want, "{settings} {more}: {path}");
    }
}

fn problems(h: &Host) -> Vec<String> {
    match derive(h, KINDS) {
        Ok(_) => panic!("derived a layout for {:?}", h.agents),
        Err(f) => f.problems,
    }
}

fn clawdie_and(mevy: Value) -> Value {
    json!({"clawdie": {"subnet_base": "10.0.0"}, "mevy": entry(mevy)})
}

#[test]
fn every_problem_is_reported_with_the_message_users_see() {
    for (agent, agents, more, needle) in [
        ("nosuch", clawdie_and(json!({})), json!({}), "agent 'nosuch' is not defined on sim1; known agents: clawdie, mevy"),
        ("nosuch", json!({}), json!({}), "agent 'nosuch' is not defined on sim1; known agents: none"),
        ("nosuch", json!(null), json!({}), "agent 'nosuch' is not defined on sim1; known agents: none"),
        ("Bad-Name", json!({"Bad-Name": {"subnet_base": "10.0.2"}}), json!({}),
         "agent name 'Bad-Name' must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 31): it names the rc.d service, the tmux session, the jails and the database"),
        ("mevy", json!({"mevy": {}}), json!({}), "subnet_base is required: the first three octets of the agent's /24, e.g. 10.0.1"),
        ("mevy", json!({"mevy": null}), json!({}), "subnet_base is required"),
        ("mevy", json!({"mevy": "10.0.1"}), json!({}), "its settings must be a dict with at least subnet_base"),
        ("mevy", json!({"mevy": {"subnet_base": "10.0.300"}}), json!({}),
         "subnet_base '10.0.300' must be the first three octets of the agent's /24, e.g. 10.0.1"),
        ("mevy", json!({"mevy": {"subnet_base": "10.0.1.0/24"}}), json!({}), "subnet_base '10.0.1.0/24' must be the first three octets"),
        ("mevy", json!({"mevy": {"subnet_base": "8.8.8"}}), json!({}),
         "subnet_base 8.8.8 is not in a private range (10/8, 172.16/12, 192.168/16); set allow_public: true to use it anyway"),
        ("mevy", json!({"mevy": {"subnet_base": "8.8.8", "allow_public": "maybe"}}), json!({}), "allow_public must be true or false, not \"maybe\""),
        ("mevy", clawdie_and(json!({"subnet_base": "10.0.0"})), json!({}),
         "subnet_base 10.0.0 is used by another agent on sim1 (clawdie); each agent needs its own /24"),
        ("mevy", clawdie_and(json!({"jails": {"ollama": true, "llama_cpp": true}})), json!({}),
         "the ollama and llama.cpp jails would both take 10.0.1.4; enable one of them, or use shared_llm_jail"),
        ("mevy", clawdie_and(json!({"system_locale": "sl_SI.ISO8859-2"})), json!({}),
         "system_locale must be a UTF-8 locale such as sl_SI.UTF-8 (legacy encodings are not supported): got \"sl_SI.ISO8859-2\""),
        ("mevy", clawdie_and(json!({"system_locale": "en_US.utf8"})), json!({}), "FreeBSD spells it en_US.UTF-8"),
        ("mevy", clawdie_and(json!({"display_locale": "sl_SI"})), json!({}), "display_locale \"sl_SI\" must be a BCP 47 language tag such as sl-SI or de-DE"),
        ("mevy", clawdie_and(json!({"assistant_locale": "SL"})), json!({}), "assistant_locale \"SL\" must be a BCP 47 language tag"),
        ("mevy", clawdie_and(json!({})), json!({"secrets_dir": "/p/collections/ansible_collections/warden/freebsd/playbooks/../secrets"}),
         "generated passwords would be kept in /p/collections/ansible_collections/warden/freebsd/playbooks/../secrets, inside an installed collection (lost when it is reinstalled); set warden_secrets_dir, or the agent's db_password"),
        ("mevy", clawdie_and(json!({"git_jail_name": "clawdie-git"})), json!({}),
         "two agents on sim1 would share the jail name(s) clawdie-git (clawdie's git jail, this agent's git); override one agent's *_jail_name"),
        ("mevy", clawdie_and(json!({"db_jail_name": "mevy-cms"})), json!({}),
         "the cms and db jails would both be named mevy-cms; override one of their *_jail_name"),
        ("mevy", clawdie_and(json!({"subnet_bsae": "10.0.1"})), json!({}), "unknown setting 'subnet_bsae'; known: subnet_base, allow_public,"),
        ("mevy", clawdie_and(json!({"redis_jail_name": "r"})), json!({}), "unknown setting 'redis_jail_name'"),
        ("mevy", clawdie_and(json!({})), json!({"defaults": {"comand": "x"}}), "unknown setting 'comand' in warden_agent_defaults"),
        ("mevy", clawdie_and(json!({})), json!({"defaults": {"db_password": "x"}}), "db_password is each agent's own"),
        ("mevy", clawdie_and(json!({"jails": {"redis": true}})), json!({}), "jails: unknown jail kind 'redis'; known: git, cms, ollama, llama_cpp, db"),
        ("mevy", clawdie_and(json!({"jails": {"cms": "sometimes"}})), json!({}), "jails.cms must be true or false, not \"sometimes\""),
        ("mevy", clawdie_and(json!({"jails": ["cms"]})), json!({}), "jails must be a dict of jail kind: true/false"),
        ("mevy", clawdie_and(json!({"enabled": "maybe"})), json!({}), "enabled must be true or false, not \"maybe\""),
        ("mevy", clawdie_and(json!({"user": ["mevy"]})), json!({}), "user must be a string, not [\"mevy\"]"),
        ("mevy", clawdie_and(json!({"env": "A=b"})), json!({}), "env must be a dict of NAME: value, not \"A=b\""),
        ("mevy", clawdie_and(json!({"env_extra": ["A"]})), json!({}), "env_extra must be a dict of NAME: value"),
        ("mevy", clawdie_and(json!({})), json!({"jail_suffixes": {"web": "web"}}), "warden_jail_suffixes: unknown jail kind 'web'"),
        ("mevy", clawdie_and(json!({})), json!({"jail_suffixes": {"cms": 7}}), "warden_jail_suffixes.cms must be a string, not 7"),
        ("mevy", clawdie_and(json!({})), json!({"packages": {"web": []}}), "warden_jails_packages: unknown jail kind 'web'"),
        ("mevy", clawdie_and(json!({})), json!({"packages": {"cms": "nginx"}}), "warden_jails_packages.cms must be a list of names, not \"nginx\""),
        ("mevy", clawdie_and(json!({})), json!({"services": {"cms": [1]}}), "warden_jails_services.cms must be a list of names"),
        ("mevy", clawdie_and(json!({})), json!({"bastille_version": "bastille: not found"}),
         "cannot choose the jail-name separator: \"bastille: not found\" is not a Bastille version; set warden_jail_separator ('-' or '')"),
        ("mevy", clawdie_and(json!({})), json!({"bastille_version": ""}), "`bastille -v` printed nothing"),
    ] {
        let found = problems(&host(agent, agents.clone(), more.clone()));
        assert!(found.iter().any(|p| p.contains(needle)), "{agents} {more}: want {needle:?}, got {found:?}");
    }
}

#[test]
fn what_is_not_a_problem() {
    for (agents, more) in [
        // ollama and llama.cpp both enabled, a shared LLM jail standing in for both.
        (
            clawdie_and(
                json!({"jails": {"ollama": true, "llama_cpp": true}, "shared_llm_jail": "llm"}),
            ),
            json!({}),
        ),
        // The secrets dir inside a collection is fine when the password is given.
        (
            clawdie_and(json!({"db_password": "from-a-vault"})),
            json!({"secrets_dir": "/c/ansible_collections/warden/freebsd/secrets"}),
        ),
        // Another agent's own problems are reported when that agent is provisioned.
        (
            json!({"mevy": {"subnet_base": "10.0.1"}, "broken": {"subnet_base": "nope", "jails": 3}}),
            json!({}),
        ),
        // Jail names only clash among jails that run: clawdie's ollama jail does not.
        (
            clawdie_and(json!({"ollama_jail_name": "clawdie-ollama", "jails": {"ollama": true}})),
            json!({}),
        ),
        // Booleans and numbers as Ansible reads them.
        (
            clawdie_and(
                json!({"enabled": "yes", "started": 0, "allow_public": "false", "user": 1001}),
            ),
            json!({}),
        ),
    ] {
        let h = host("mevy", agents.clone(), more.clone());
        if let Err(f) = derive(&h, KINDS) {
            panic!("{agents} {more}: {}", f.msg);
        }
    }
}

#[test]
fn all_problems_come_at_once_in_one_message() {
    let h = host(
        "Mevy",
        json!({"Mevy": {"subnet_base": "8.8.8", "system_locale": "de_DE.ISO8859-1", "display_locale": "x", "jails": {"ollama": 1, "llama_cpp": "on"}}}),
        json!({}),
    );
    let f = derive(&h, KINDS).unwrap_err();
    assert_eq!(f.problems.len(), 5, "{:?}", f.problems);
    assert!(
        f.msg
            .starts_with("agent Mevy: agent name 'Mevy' must start"),
        "{}",
        f.msg
    );
    for needle in [
        "not in a private range",
        "would both take 8.8.8.4",
        "legacy encodings",
        "display_locale \"x\"",
    ] {
        assert!(f.msg.contains(needle), "{needle}: {}", f.msg);
    }
    assert_eq!(f.msg, format!("agent Mevy: {}", f.problems.join("; ")));
}

#[test]
fn a_new_jail_kind_is_one_row() {
    let redis = Kind {
        name: "redis",
        label: "redis",
        suffix: "redis",
        octet: 6,
        packages: &["redis"],
        services: &["redis"],
        env_ip: "WARDEN_REDIS_IP",
        env_jail: "REDIS_JAIL_NAME",
        enabled: false,
        llm: false,
    };
    let table: Vec<Kind> = KINDS.iter().copied().chain([redis]).collect();
    let h = host(
        "mevy",
        json!({"mevy": {"subnet_base": "10.0.1", "jails": {"redis": true}, "redis_jail_name": "cache"}}),
        json!({}),
    );
    let l = serde_json::to_value(derive(&h, &table).unwrap()).unwrap();
    assert_eq!(l["ip"]["redis"], "10.0.1.6");
    assert_eq!(l["ip_cidr"]["redis"], "10.0.1.6/24");
    assert_eq!(l["jail"]["redis"], "cache");
    assert_eq!(l["jails_enabled"]["redis"], true);
    assert_eq!(l["jail_kinds"], json!(["git", "cms", "db", "redis"]));
    assert_eq!(l["packages"]["redis"], json!(["redis"]));
    assert_eq!(l["services"]["redis"], json!(["redis"]));
    assert_eq!(l["env_file"]["WARDEN_REDIS_IP"], "10.0.1.6");
    assert_eq!(l["env_file"]["REDIS_JAIL_NAME"], "cache");
    // And its octet takes part in the alternatives check.
    let on_five = Kind { octet: 5, ..redis };
    let table: Vec<Kind> = KINDS.iter().copied().chain([on_five]).collect();
    let f = derive(&h, &table).unwrap_err();
    assert!(
        f.msg
            .contains("the db and redis jails would both take 10.0.1.5; enable one of them"),
        "{}",
        f.msg
    );
    // Without the row, the same inventory is refused.
    assert!(derive(&h, KINDS).is_err());
}

#[test]
fn a_shared_llm_jail_gives_its_address_to_the_kinds_it_stands_in_for() {
    let h = mevy(
        json!({"jails": {"ollama": true}, "shared_llm_jail": "sharedllm", "env_extra": {"WARDEN_LLAMA_CPP_IP": "kept"}}),
    );
    let before = derive(&h, KINDS).unwrap();
    let after = use_shared_llm(before.clone(), "10.0.9.4/24", KINDS).unwrap();
    assert_eq!(after.ip["ollama"], "10.0.9.4");
    assert_eq!(after.ip["llama_cpp"], "10.0.9.4");
    assert_eq!(after.ip_cidr["ollama"], "10.0.9.4/24");
    assert_eq!(after.ip["git"], "10.0.1.2");
    assert_eq!(after.env_file["WARDEN_OLLAMA_IP"], "10.0.9.4");
    assert_eq!(after.env_file["OLLAMA_JAIL_NAME"], "sharedllm");
    // env_extra still has the last word.
    assert_eq!(after.env_file["WARDEN_LLAMA_CPP_IP"], "kept");
    let f = use_shared_llm(before, "10.0.9.4", KINDS).unwrap_err();
    assert!(
        f.msg.contains("the shared LLM jail sharedllm's address")
            && f.msg.contains("no prefix length"),
        "{}",
        f.msg
    );
}

#[test]
fn a_layout_read_back_keeps_what_a_play_added() {
    let mut v = serde_json::to_value(derive(&mevy(json!({})), KINDS).unwrap()).unwrap();
    v["paths"]["pg_hba"] = json!("/x/pg_hba.conf");
    v["extra"] = json!({"k": 1});
    let back: Layout = serde_json::from_value(v.clone()).unwrap();
    let again = use_shared_llm(back, "10.0.1.4/24", KINDS).unwrap();
    let out = serde_json::to_value(again).unwrap();
    assert_eq!(out["paths"]["pg_hba"], "/x/pg_hba.conf");
    assert_eq!(out["extra"], json!({"k": 1}));
}

mod binary {
    use assert_cmd::Command;
    use serde_json::{json, Value};

    fn run(input: &str) -> (bool, Value) {
        let out = Command::cargo_bin("warden_layout")
            .unwrap()
            .write_stdin(input)
            .output()
            .unwrap();
        (
            out.status.success(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    }

    fn request() -> Value {
        json!({"derive": {
            "agent": "mevy", "host": "sim1", "agents": {"mevy": {"subnet_base": "10.0.1"}},
            "defaults": {}, "bastille_version": "1.1.0", "jail_separator": "auto", "jail_suffixes": {},
            "packages": {}, "services": {}, "secrets_dir": "/s", "bridge": "warden0", "ext_if": "",
            "root": "", "file_owner": "root", "file_group": "wheel", "tmux_path": "/usr/local/bin/tmux",
            "tmux_socket_dir": "",
        }})
    }

    #[test]
    fn derives_on_stdin_and_fails_in_json() {
        let (ok, out) = run(&request().to_string());
        assert!(ok, "{out}");
        assert_eq!(out["layout"]["jail"]["git"], "mevygit");

        let mut bad = request();
        bad["derive"]["agents"]["mevy"]["subnet_base"] = json!("8.8.8");
        let (ok, out) = run(&bad.to_string());
        assert!(!ok);
        assert_eq!(out["failed"], true);
        assert!(
            out["msg"]
                .as_str()
                .unwrap()
                .starts_with("agent mevy: subnet_base 8.8.8 is not in a private range"),
            "{out}"
        );
        assert_eq!(out["problems"].as_array().unwrap().len(), 1);

        let (ok, out) =
            run(&json!({"shared_llm": {"layout": request()["nothing"], "ip": "x"}}).to_string());
        assert!(!ok);
        assert!(
            out["msg"]
                .as_str()
                .unwrap()
                .contains("its input is not a request"),
            "{out}"
        );
        let (ok, out) = run("not json");
        assert!(!ok && out["failed"] == true);
    }

    #[test]
    fn points_a_layout_at_the_shared_llm_jail() {
        let (_, derived) = run(&request().to_string());
        let (ok, out) = run(
            &json!({"shared_llm": {"layout": derived["layout"], "ip": "10.0.9.4/24"}}).to_string(),
        );
        assert!(ok, "{out}");
        assert_eq!(out["layout"]["ip"]["ollama"], "10.0.9.4");
    }
}
