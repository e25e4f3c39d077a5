"""Two agents on one host (clawdie on 10.0.0, mevy on 10.0.1): network, PF and services."""

import pytest


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


@pytest.mark.parametrize("order", [("clawdie", "mevy"), ("mevy", "clawdie")])
def test_two_agents_in_either_order(sandbox, order):
    for name in order:
        rc, out, recap = sandbox.playbook(*agent(name))
        assert rc == 0, out
    assert_both_agents(sandbox)
    for name in order:
        rc, out, recap = sandbox.playbook(*agent(name))
        assert rc == 0 and recap["sim1"]["changed"] == 0, out


def test_two_agents_started_at_the_same_moment_lose_nothing(sandbox):
    running = [sandbox.start_playbook(*agent(name)) for name in ("clawdie", "mevy")]
    for proc in running:
        rc, out, _ = sandbox.finish(proc)
        assert rc == 0, out
    assert_both_agents(sandbox)
    for name in ("clawdie", "mevy"):
        rc, out, recap = sandbox.playbook(*agent(name))
        assert rc == 0 and recap["sim1"]["changed"] == 0, out


def test_one_step_by_tag(sandbox):
    rc, out, recap = sandbox.playbook(*agent("mevy"), "--tags", "network")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    assert not (sandbox.root() / "etc" / "pf.warden.conf").exists()
    rc, out, recap = sandbox.playbook(*agent("mevy"), "--tags", "pf")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    assert (sandbox.root() / "etc" / "pf.warden.conf").exists()
