"""agent_remove.yml takes one agent away and leaves the other; clashes between two agents of one
host fail before any change; the env step alone writes the agent's .env."""

import json
import os
import subprocess

from conftest import assert_reboot_keeps_state
from test_two_agents import agent


def psql(sandbox, sql):
    env = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", env["PGPORT"], "-U", "postgres", "-tAc", sql],
        env={**os.environ, "PGPASSWORD": env["PGPASSWORD"], "PGSSLMODE": "verify-full", "PGSSLROOTCERT": env["PGSSLROOTCERT"]},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_removing_one_agent_leaves_the_other(sandbox):
    for name in ("clawdie", "mevy"):
        rc, out, _ = sandbox.playbook(*agent(name))
        assert rc == 0, out

    rc, out, recap = sandbox.playbook("playbooks/agent_remove.yml", "-e", "agent_name=mevy", "--diff")
    assert rc == 0 and recap["sim1"]["changed"] >= 6, out
    root = sandbox.root()
    ifconfig = sandbox.tool("ifconfig", "warden0").stdout
    assert "inet 10.0.1.1 " not in ifconfig and "inet 10.0.0.1 " in ifconfig, ifconfig
    rc_conf = (root / "etc" / "rc.conf").read_text()
    assert "10.0.1.1" not in rc_conf and "mevy_enable" not in rc_conf, rc_conf
    assert 'ifconfig_warden0="inet 10.0.0.1/24"' in rc_conf or 'ifconfig_warden0_alias0="inet 10.0.0.1/24"' in rc_conf
    nat = sandbox.tool("pfctl", "-s", "nat").stdout
    assert "10.0.1.0/24" not in nat and "10.0.0.0/24" in nat, nat
    assert sorted(sandbox.tool("jls", "name").stdout.split()) == ["clawdiecms", "clawdiedb", "clawdiegit"]
    assert not (root / "usr/local/bastille/jails/mevygit").exists()
    assert sandbox.tool("service", "mevy", "status").returncode != 0
    assert not (root / "usr/local/etc/rc.d/mevy").exists()
    assert not (root / "home/mevy/.env").exists()
    assert (root / "home/clawdie/.env").exists()
    assert sandbox.tool("service", "clawdie", "status").returncode == 0
    assert psql(sandbox, "SELECT string_agg(datname, ',') FROM pg_database WHERE datname IN ('clawdie', 'mevy')") == "clawdie"
    assert psql(sandbox, "SELECT count(*) FROM pg_roles WHERE rolname = 'mevy'") == "0"
    hba = (sandbox.path / "pg" / "data" / "pg_hba.conf").read_text()
    assert "10.0.1.0/24" not in hba and "10.0.0.0/24" in hba
    # Removed and renumbered: the host boots into the same state.
    assert_reboot_keeps_state(sandbox)

    rc, out, recap = sandbox.playbook("playbooks/agent_remove.yml", "-e", "agent_name=mevy")
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    rc, out, recap = sandbox.playbook(*agent("clawdie"))
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    # And mevy comes back in full.
    rc, out, _ = sandbox.playbook(*agent("mevy"))
    assert rc == 0, out
    rc, out, recap = sandbox.playbook(*agent("mevy"))
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert_reboot_keeps_state(sandbox)


def two_agents(**mevy):
    user = os.popen("id -un").read().strip()
    common = {"user": user, "command": "exec sleep 3600", "system_locale": "sl_SI.UTF-8"}
    return {
        "clawdie": {**common, "subnet_base": "10.0.0"},
        "mevy": {**common, "subnet_base": "10.0.1", **mevy},
    }


def test_clashes_between_agents_of_one_host_fail_before_any_change(sandbox):
    before = sandbox.snapshot()
    for agents, needle in [
        (two_agents(subnet_base="10.0.0"), "subnet_base 10.0.0 is used by another agent on sim1"),
        (two_agents(git_jail_name="clawdiegit"), "would share the jail name(s) clawdiegit"),
    ]:
        extra = json.dumps({"warden_agents": agents, "agent_name": "mevy"})
        rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", extra)
        assert rc != 0, out
        assert needle in out, out
    assert sandbox.snapshot() == before


def test_env_step_alone_writes_the_agents_env(sandbox):
    rc, out, recap = sandbox.playbook(*agent("mevy"), "--tags", "env", "--diff")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    env_file = sandbox.root() / "home" / "mevy" / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.stat().st_uid == os.getuid()
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    password = (sandbox.path / "secrets" / "sim1" / "mevy-db").read_text().strip()
    assert values == {
        "AGENT_NAME": "mevy",
        "ASSISTANT_NAME": "Mevy",
        "AGENT_SUBNET_BASE": "10.0.1",
        "WARDEN_GATEWAY": "10.0.1.1",
        "WARDEN_SUBNET": "10.0.1.0/24",
        "WARDEN_GIT_IP": "10.0.1.2",
        "WARDEN_CMS_IP": "10.0.1.3",
        "WARDEN_OLLAMA_IP": "10.0.1.4",
        "WARDEN_LLAMA_CPP_IP": "10.0.1.4",
        "WARDEN_DB_IP": "10.0.1.5",
        "GIT_JAIL_NAME": "mevygit",
        "CMS_JAIL_NAME": "mevycms",
        "OLLAMA_JAIL_NAME": "mevyollama",
        "LLAMA_CPP_JAIL_NAME": "mevyllamacpp",
        "DB_JAIL_NAME": "mevydb",
        "WARDEN_DB_NAME": "mevy",
        "WARDEN_DB_USER": "mevy",
        "WARDEN_DB_PASSWORD": password,
        "SYSTEM_LOCALE": "sl_SI.UTF-8",
        "DISPLAY_LOCALE": "sl-SI",
        "ASSISTANT_LOCALE": "sl-SI",
    }, values
    assert "WARDEN_DB_PASSWORD=********" in out and password not in out
    # Nothing but the env step ran.
    assert not (sandbox.root() / "etc" / "pf.warden.conf").exists()
    rc, out, recap = sandbox.playbook(*agent("mevy"), "--tags", "env")
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    # The password is made once: a re-run keeps it.
    assert (sandbox.path / "secrets" / "sim1" / "mevy-db").read_text().strip() == password
    assert_reboot_keeps_state(sandbox)
