"""Bad input, table-driven over every module: each case must end with exit 1, exactly one
failed JSON object whose message names the problem, and nothing changed: the simulated host's
tree (hash of every file, mode and owner) and, for warden_db, the database catalog and
pg_hba.conf are as before. The host already runs agent clawdie, whose state must survive."""

import json

import pytest
from conftest import base_args as base

# (module, changes to the valid args, words the message must hold). A value of DROP removes
# the parameter.
DROP = object()
HUGE = "x" * (1 << 20)
CASES = [
    # warden_bridge_alias
    ("warden_bridge_alias", {"addresses": ["10.0.5.0/24"]}, "network address"),
    ("warden_bridge_alias", {"addresses": ["10.0.5.255/24"]}, "broadcast address"),
    ("warden_bridge_alias", {"addresses": ["8.8.8.1/24"]}, "not in a private range"),
    ("warden_bridge_alias", {"addresses": ["10.0.5.1/33"]}, "10.0.5.1/33"),
    ("warden_bridge_alias", {"addresses": ["10.0.5.300/24"]}, "10.0.5.300/24"),
    ("warden_bridge_alias", {"addresses": ["fe80::1/64"]}, "fe80::1/64"),
    ("warden_bridge_alias", {"addresses": ["10.0.5.1/24", "10.0.5.2/24"]}, "10.0.5.2"),
    ("warden_bridge_alias", {"addresses": ["10.0.0.7/24"]}, "10.0.0.7"),
    ("warden_bridge_alias", {"addresses": ["10.0.5.1"]}, "10.0.5.1"),
    ("warden_bridge_alias", {"bridge": "warden0; rm -rf /"}, "bridge"),
    ("warden_bridge_alias", {"bridge": "w" * 20}, "bridge"),
    ("warden_bridge_alias", {"bridge": "wärden0"}, "bridge"),
    ("warden_bridge_alias", {"bridge": "warden 0"}, "bridge"),
    ("warden_bridge_alias", {"state": "sideways"}, "state"),
    ("warden_bridge_alias", {"colour": "blue"}, "colour"),
    ("warden_bridge_alias", {"addresses": {"a": 1}}, "addresses"),
    ("warden_bridge_alias", {"lock_timeout": "soon"}, "lock_timeout"),
    ("warden_bridge_alias", {"addresses": DROP}, "addresses"),
    # warden_pf_net
    ("warden_pf_net", {"subnets": ["10.0.5.1/24"]}, "10.0.5.1/24"),
    ("warden_pf_net", {"subnets": ["8.8.8.0/24"]}, "not in a private range"),
    ("warden_pf_net", {"subnets": ["10.0.5.0/33"]}, "10.0.5.0/33"),
    ("warden_pf_net", {"subnets": ["2001:db8::/64"]}, "2001:db8::/64"),
    ("warden_pf_net", {"subnets": ["10.0.5.0/24", "10.0.5.0/25"]}, "overlap"),
    ("warden_pf_net", {"subnets": ["10.0.0.0/16"]}, "overlaps 10.0.0.0/24"),
    ("warden_pf_net", {"ext_if": "vtnet0;pass all"}, "ext_if"),
    ("warden_pf_net", {"ext_if": "v" * 17}, "ext_if"),
    ("warden_pf_net", {"bridge": "war\nden0"}, "bridge"),
    ("warden_pf_net", {"enable": "maybe"}, "enable"),
    ("warden_pf_net", {"unknown_knob": 1}, "unknown_knob"),
    ("warden_pf_net", {"subnets": DROP}, "subnets"),
    # bastille_jail
    ("bastille_jail", {"name": "nova-git"}, "nova-git"),
    ("bastille_jail", {"name": "nova git"}, "nova git"),
    ("bastille_jail", {"name": "nova;reboot"}, "nova;reboot"),
    ("bastille_jail", {"name": "nova'git"}, "nova'git"),
    ("bastille_jail", {"name": "jaïl"}, "jaïl"),
    ("bastille_jail", {"name": "n" * 80}, "n" * 80),
    ("bastille_jail", {"name": ""}, "name"),
    ("bastille_jail", {"ip": "10.0.5.300/24"}, "10.0.5.300/24"),
    ("bastille_jail", {"ip": "10.0.5.0/24"}, "network address"),
    ("bastille_jail", {"ip": "8.8.8.8/24"}, "not in a private range"),
    ("bastille_jail", {"ip": "fe80::2/64"}, "fe80::2/64"),
    ("bastille_jail", {"gateway": "10.0.9.1"}, "10.0.9.1"),
    ("bastille_jail", {"release": "14.2-RELEASE; rm -rf /"}, "release"),
    ("bastille_jail", {"packages": ["nginx; rm -rf /"]}, "nginx; rm -rf /"),
    ("bastille_jail", {"services": ["nginx\nreboot"]}, "services"),
    ("bastille_jail", {"sysrc": {"bad key": "x"}}, "bad key"),
    ("bastille_jail", {"sysrc": {"nginx_flags": 'a"b'}}, "nginx_flags"),
    ("bastille_jail", {"state": "on"}, "state"),
    ("bastille_jail", {"name": HUGE}, "name"),
    # warden_db
    ("warden_db", {"name": "n" * 64}, "63"),
    ("warden_db", {"name": "pg_nova"}, "pg_"),
    ("warden_db", {"name": "all"}, "all"),
    ("warden_db", {"database": "sameuser"}, "sameuser"),
    ("warden_db", {"name": ""}, "name"),
    ("warden_db", {"ssl_mode": "sometimes"}, "ssl_mode"),
    ("warden_db", {"login_port": "fivefourthreetwo"}, "login_port"),
    ("warden_db", {"pg_hba_address": "10.0.5.1/24"}, "10.0.5.1/24"),
    ("warden_db", {"pg_hba_address": "10.0.5.0/40"}, "10.0.5.0/40"),
    ("warden_db", {"pg_hba_method": "trust"}, "pg_hba_method"),
    ("warden_db", {"lc_collate": "sl_SI.ISO8859-2"}, "sl_SI.ISO8859-2"),
    ("warden_db", {"encoding": "LATIN2"}, "LATIN2"),
    ("warden_db", {"pasword": "typo"}, "pasword"),
    ("warden_db", {"name": DROP}, "name"),
    # warden_env
    ("warden_env", {"values": {"BAD KEY": "x"}}, "BAD KEY"),
    ("warden_env", {"values": {"NOTE": "line\nbreak"}}, "NOTE"),
    ("warden_env", {"values": {"1ABC": "x"}}, "1ABC"),
    ("warden_env", {"secret_values": {"K;rm": "x"}}, "K;rm"),
    ("warden_env", {"values": {"A": "1"}, "secret_values": {"A": "2"}}, "A"),
    ("warden_env", {"mode": "0999"}, "mode"),
    ("warden_env", {"owner": "no_such_user_xyz"}, "no_such_user_xyz"),
    ("warden_env", {"path": "relative/.env"}, "path"),
    ("warden_env", {"values": "AGENT_NAME"}, "values"),
    ("warden_env", {"path": DROP}, "path"),
    # warden_rcd
    ("warden_rcd", {"name": "nova-bot"}, "nova-bot"),
    ("warden_rcd", {"name": "nova;reboot"}, "nova;reboot"),
    ("warden_rcd", {"system_locale": "sl_SI.ISO8859-2"}, "sl_SI.ISO8859-2"),
    ("warden_rcd", {"system_locale": "xx_XX.UTF-8"}, "xx_XX.UTF-8"),
    ("warden_rcd", {"display_locale": "sl SI"}, "display_locale"),
    ("warden_rcd", {"user": "no_such_user_xyz"}, "no_such_user_xyz"),
    ("warden_rcd", {"env": {"BAD-KEY": "x"}}, "BAD-KEY"),
    ("warden_rcd", {"env": {"K": "a\x00b"}}, "NUL"),
    ("warden_rcd", {"tmux_path": "relative/tmux"}, "tmux_path"),
    ("warden_rcd", {"mode": "u+rwx,evil"}, "mode"),
    ("warden_rcd", {"require": ["LOGIN; reboot"]}, "LOGIN; reboot"),
    ("warden_rcd", {"command": HUGE + "\n"}, "command"),
    ("warden_rcd", {"started": "perhaps"}, "started"),
]


def spoil(args, changes):
    for key, value in changes.items():
        if value is DROP:
            args.pop(key, None)
        else:
            args[key] = value
    return args


def assert_clean_failure(host, done, needle, before, catalog_before=None):
    assert done.returncode == 1, (done.returncode, done.stdout[:2000], done.stderr[:2000])
    result = json.loads(done.stdout)  # exactly one JSON object, nothing else on stdout
    assert isinstance(result, dict) and result.get("failed") is True, result
    assert needle.lower() in result["msg"].lower(), result["msg"][:2000]
    assert host.tree_hash() == before, "the host changed"
    if catalog_before is not None:
        assert host.catalog() == catalog_before, "the database catalog or pg_hba.conf changed"


@pytest.fixture(scope="module")
def host(agent_host_factory):
    return agent_host_factory()


@pytest.mark.parametrize("module, changes, needle", CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_bad_params(host, module, changes, needle):
    before = host.tree_hash()
    catalog = host.catalog() if module == "warden_db" else None
    args = spoil(base(host, module), changes)
    done = host.run(module, json.dumps(args))
    assert_clean_failure(host, done, needle[:200], before, catalog)


@pytest.mark.parametrize(
    "module, text, needle",
    [
        ("warden_bridge_alias", None, "args"),
        ("warden_pf_net", "{not json", "json"),
        ("bastille_jail", '["a", "list"]', "object"),
        ("warden_db", "", "args"),
        ("warden_env", '{"path": "/x", "values": {"A": "1"}', "json"),
        ("warden_rcd", "\xff\xfe garbage", "args"),
    ],
)
def test_bad_args_files(host, module, text, needle):
    before = host.tree_hash()
    done = host.run(module, text)
    assert_clean_failure(host, done, needle, before)


def test_the_suite_is_big_enough():
    assert len(CASES) + 6 >= 60
    assert {m for m, _, _ in CASES} == {"warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"}


def test_a_valid_run_still_works_after_all_that(host):
    """The base args are valid: the cases fail because of their one change, not the base."""
    for module in ("warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"):
        args = base(host, module)
        args["_ansible_check_mode"] = True
        done = host.run(module, json.dumps(args))
        assert done.returncode == 0, done.stdout
        assert json.loads(done.stdout)["changed"] is True
