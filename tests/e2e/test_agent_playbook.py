"""playbooks/agent.yml end to end: real ansible-playbook, the built modules in library/,
the simulated host of inventory/sandbox.yml."""

import json

from conftest import assert_reboot_keeps_state, mutating

AGENT = ["playbooks/agent.yml", "-e", "agent_name=mevy"]


def test_first_run_provisions_and_second_run_changes_nothing(sandbox):
    rc, out, recap = sandbox.playbook(*AGENT)
    assert rc == 0, out
    assert recap["sim1"]["changed"] >= 1 and recap["sim1"]["failed"] == 0, out
    status = sandbox.tool("service", "mevy", "status")
    assert (status.returncode, status.stdout) == (0, "mevy is running.\n")
    rc_conf = (sandbox.root() / "etc" / "rc.conf").read_text()
    assert rc_conf.endswith('mevy_enable="YES"\n')
    script = (sandbox.root() / "usr/local/etc/rc.d/mevy").read_text()
    assert "LANG=sl_SI.UTF-8" in script and "DISPLAY_LOCALE=sl-SI" in script

    before = sandbox.snapshot()
    rc, out, recap = sandbox.playbook(*AGENT)
    assert rc == 0, out
    assert recap["sim1"]["changed"] == 0, out
    assert sandbox.snapshot() == before
    assert_reboot_keeps_state(sandbox)


def test_check_mode_on_a_fresh_host_changes_nothing(sandbox):
    before = sandbox.snapshot()
    rc, out, recap = sandbox.playbook(*AGENT, "--check", "--diff")
    assert rc == 0, out
    assert recap["sim1"]["changed"] >= 1, out
    assert "+mevy_enable=\"YES\"" in out
    assert "+warden_net = \"{ 10.0.1.0/24 }\"" in out
    assert sandbox.snapshot() == before
    assert [c for c in sandbox.calls() if mutating(c)] == []
    assert sandbox.tool("service", "mevy", "status").returncode == 1
    # The prediction is exact: the real run changes what check mode said it would.
    real_rc, real_out, real_recap = sandbox.playbook(*AGENT)
    assert real_rc == 0, real_out
    assert real_recap["sim1"]["changed"] == recap["sim1"]["changed"], (out, real_out)
    assert_reboot_keeps_state(sandbox)


def test_check_mode_after_provisioning_reports_no_change(sandbox):
    assert sandbox.playbook(*AGENT)[0] == 0
    rc, out, recap = sandbox.playbook(*AGENT, "--check")
    assert rc == 0 and recap["sim1"]["changed"] == 0, out


def test_unknown_agent_fails_listing_known_ones(sandbox):
    rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", "agent_name=nosuch")
    assert rc != 0
    assert "unknown agent 'nosuch'; known agents: clawdie, mevy" in out


def test_missing_agent_name_is_explained(sandbox):
    rc, out, _ = sandbox.playbook("playbooks/agent.yml")
    assert rc != 0
    assert "-e agent_name=<name>" in out


def test_bad_settings_fail_before_any_change(sandbox):
    before = sandbox.snapshot()
    for agents, name, needle in [
        ({"Bad-Name": {"subnet_base": "10.0.2"}}, "Bad-Name", "must start with a lower-case letter"),
        ({"ok": {"subnet_base": "10.0.300"}}, "ok", "must be the first three octets"),
        ({"ok": {"subnet_base": "8.8.8"}}, "ok", "is not in a private range"),
        ({"ok": {"subnet_base": "10.0.2", "system_locale": "sl_SI.ISO8859-2"}}, "ok", "legacy encodings"),
    ]:
        extra = json.dumps({"warden_agents": agents, "agent_name": name})
        rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", extra)
        assert rc != 0, out
        assert needle in out, out
    assert sandbox.snapshot() == before


def test_service_tag_runs_only_the_service_step(sandbox):
    rc, out, recap = sandbox.playbook(*AGENT, "--tags", "service")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    assert not (sandbox.root() / "etc" / "pf.warden.conf").exists()
    rc, out, recap = sandbox.playbook(*AGENT, "--tags", "service")
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert_reboot_keeps_state(sandbox)
