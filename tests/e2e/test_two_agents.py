"""Two agents on one host (clawdie on 10.0.0, mevy on 10.0.1): network, PF, jails and services."""

import json
import os
import subprocess

import pytest
from conftest import assert_reboot_keeps_state


def agent(name):
    return ["playbooks/agent.yml", "-e", f"agent_name={name}"]


def assert_both_agents(sandbox):
    ifconfig = sandbox.tool("ifconfig", "warden0").stdout
    assert "\tinet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255\n" in ifconfig, ifconfig
    assert "\tinet 10.0.1.1 netmask 0xffffff00 broadcast 10.0.1.255\n" in ifconfig, ifconfig
    rc_conf = (sandbox.root() / "etc" / "rc.conf").read_text()
    addresses = sorted(line for line in rc_conf.splitlines() if line.startswith("ifconfig_warden0"))
    # The first agent's gateway in ifconfig_warden0, the second in alias0: contiguous.
    assert [a.split("=")[0] for a in addresses] == ["ifconfig_warden0", "ifconfig_warden0_alias0"], rc_conf
    assert sorted(a.split('"')[1] for a in addresses) == ["inet 10.0.0.1/24", "inet 10.0.1.1/24"]
    assert 'cloned_interfaces="bridge0"' in rc_conf and 'ifconfig_bridge0_name="warden0"' in rc_conf
    include = (sandbox.root() / "etc" / "pf.warden.conf").read_text()
    assert 'warden_net = "{ 10.0.0.0/24, 10.0.1.0/24 }"' in include, include
    nat = sandbox.tool("pfctl", "-s", "nat").stdout
    assert nat.count("round-robin") == 2 and "10.0.0.0/24" in nat and "10.0.1.0/24" in nat, nat
    for name in ("clawdie", "mevy"):
        assert sandbox.tool("service", name, "status").returncode == 0, name
    # Each agent's jails at its own .2/.3/.5 on warden0 (Bastille 1.4: no '-' in the names).
    running = sandbox.tool("jls", "name").stdout.split()
    assert sorted(running) == sorted(f"{a}{k}" for a in ("clawdie", "mevy") for k in ("git", "cms", "db")), running
    jails = sandbox.root() / "usr/local/bastille/jails"
    for agent, base in (("clawdie", "10.0.0"), ("mevy", "10.0.1")):
        for kind, host in (("git", 2), ("cms", 3), ("db", 5)):
            rc_conf = (jails / f"{agent}{kind}" / "root/etc/rc.conf").read_text()
            assert f'ifconfig_vnet0="inet {base}.{host}/24"' in rc_conf, rc_conf
            assert f'defaultrouter="{base}.1"' in rc_conf, rc_conf
    # Each agent's role and database on the server, its pg_hba line, nobody else's database.
    env = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", env["PGPORT"], "-U", "postgres", "-tAc",
         "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database WHERE datname IN ('clawdie', 'mevy')"],
        env={**os.environ, "PGPASSWORD": env["PGPASSWORD"], "PGSSLMODE": "verify-full",
             "PGSSLROOTCERT": env["PGSSLROOTCERT"]}, capture_output=True, text=True, check=False,
    )
    assert out.stdout.strip() == "clawdie:clawdie,mevy:mevy", out
    hba = (sandbox.path / "pg" / "data" / "pg_hba.conf").read_text()
    assert "host\tclawdie\tclawdie\t10.0.0.0/24\tscram-sha-256" in hba and "host\tmevy\tmevy\t10.0.1.0/24\tscram-sha-256" in hba
    members = sandbox.tool("ifconfig", "warden0").stdout.count("member: ")
    assert members == 6, sandbox.tool("ifconfig", "warden0").stdout


@pytest.mark.parametrize("order", [("clawdie", "mevy"), ("mevy", "clawdie")])
def test_two_agents_in_either_order(sandbox, order):
    for name in order:
        rc, out, recap = sandbox.playbook(*agent(name))
        assert rc == 0, out
    assert_both_agents(sandbox)
    for name in order:
        rc, out, recap = sandbox.playbook(*agent(name))
        assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert_reboot_keeps_state(sandbox)
    assert_both_agents(sandbox)


def test_two_agents_started_at_the_same_moment_lose_nothing(sandbox):
    running = [sandbox.start_playbook(*agent(name)) for name in ("clawdie", "mevy")]
    for proc in running:
        rc, out, _ = sandbox.finish(proc)
        assert rc == 0, out
    assert_both_agents(sandbox)
    for name in ("clawdie", "mevy"):
        rc, out, recap = sandbox.playbook(*agent(name))
        assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert_reboot_keeps_state(sandbox)


def test_one_step_by_tag(sandbox):
    rc, out, recap = sandbox.playbook(*agent("mevy"), "--tags", "network")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    assert not (sandbox.root() / "etc" / "pf.warden.conf").exists()
    rc, out, recap = sandbox.playbook(*agent("mevy"), "--tags", "pf")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    assert (sandbox.root() / "etc" / "pf.warden.conf").exists()
    assert_reboot_keeps_state(sandbox)


def mevy_with(sandbox, **extra):
    """Extra vars giving mevy the sandbox's settings plus `extra`."""
    user = os.popen("id -un").read().strip()
    settings = {
        "subnet_base": "10.0.1",
        "user": user,
        "workdir": str(sandbox.root() / "home"),
        "command": "exec sleep 3600",
        "system_locale": "sl_SI.UTF-8",
        **extra,
    }
    return ["playbooks/agent.yml", "-e", json.dumps({"agent_name": "mevy", "warden_agents": {"mevy": settings}})]


def test_a_shared_llm_jail_replaces_the_agents_own(sandbox):
    sandbox.tool("ifconfig", "bridge9", "create", "name", "warden0", "up")
    sandbox.tool("bastille", "bootstrap", "14.2-RELEASE")
    created = sandbox.tool("bastille", "create", "-B", "-g", "10.0.9.1", "sharedllm", "14.2-RELEASE", "10.0.9.4/24", "warden0")
    assert created.returncode == 0, created.stderr
    rc, out, _ = sandbox.playbook(*mevy_with(sandbox, jails={"ollama": True}, shared_llm_jail="sharedllm"))
    assert rc == 0, out
    assert "mevyollama" not in sandbox.tool("jls", "name").stdout.split()
    assert "Check the shared LLM jail runs" in out
    # The layout points the LLM kinds at the shared jail, .env included.
    env = (sandbox.root() / "home" / ".env").read_text()
    assert "WARDEN_OLLAMA_IP=10.0.9.4\n" in env and "OLLAMA_JAIL_NAME=sharedllm\n" in env, env
    assert "WARDEN_LLAMA_CPP_IP=10.0.9.4\n" in env and "WARDEN_GIT_IP=10.0.1.2\n" in env, env
    rc, out, recap = sandbox.playbook(*mevy_with(sandbox, jails={"ollama": True}, shared_llm_jail="sharedllm"))
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert_reboot_keeps_state(sandbox)


def test_ollama_and_llama_cpp_cannot_share_the_agents_address(sandbox):
    before = sandbox.snapshot()
    rc, out, _ = sandbox.playbook(*mevy_with(sandbox, jails={"ollama": True, "llama_cpp": True}), "--tags", "jails")
    assert rc != 0
    assert "the ollama and llama.cpp jails would both take 10.0.1.4" in out, out
    assert sandbox.snapshot() == before
