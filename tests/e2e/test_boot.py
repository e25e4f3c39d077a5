"""The reboot check itself: `freebsd-sim boot` brings a host back from its files, so state that
lives only at runtime is caught."""

import pytest
from conftest import assert_reboot_keeps_state, reboot, runtime_state


def test_boot_check_catches_an_alias_set_only_at_runtime(sandbox):
    rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", "agent_name=mevy", "--tags", "network")
    assert rc == 0, out
    assert_reboot_keeps_state(sandbox)
    # An address added by hand, never persisted: gone after a boot, and the check says so.
    added = sandbox.tool("ifconfig", "warden0", "inet", "10.0.7.1/24", "alias")
    assert added.returncode == 0, added.stderr
    with pytest.raises(AssertionError, match=r"interfaces:[\s\S]*10\.0\.7\.1/24"):
        assert_reboot_keeps_state(sandbox)
    assert "10.0.7.1/24" not in runtime_state(sandbox)["interfaces"]["warden0"]["inet"]


def test_boot_check_catches_pf_enabled_only_at_runtime(sandbox):
    rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", "agent_name=mevy", "--tags", "pf")
    assert rc == 0, out
    # rc.conf.local turning PF off, as an admin might: the next boot leaves PF disabled.
    (sandbox.root() / "etc" / "rc.conf.local").write_text('pf_enable="NO"\n')
    with pytest.raises(AssertionError, match=r"pf:"):
        assert_reboot_keeps_state(sandbox)
    # The next run writes pf_enable where it takes effect, and the host reboots intact.
    rc, out, recap = sandbox.playbook("playbooks/agent.yml", "-e", "agent_name=mevy", "--tags", "pf")
    assert rc == 0 and recap["sim1"]["changed"] >= 1, out
    assert (sandbox.root() / "etc" / "rc.conf.local").read_text() == 'pf_enable="YES"\n'
    assert_reboot_keeps_state(sandbox)


def test_a_fresh_host_boots_to_what_it_was_created_with(sandbox):
    before = runtime_state(sandbox)
    console = reboot(sandbox)
    assert "Starting Network: lo0 vtnet0." in console, console
    assert runtime_state(sandbox) == before
