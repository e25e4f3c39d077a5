"""agent.yml over real SSH (a loopback sshd of the test's own) to a target without Python,
through the warden_binary action plugin's per-platform binary cache."""

import json
import os
import platform
import re
import shutil
import subprocess

from conftest import BIN, REPO, assert_reboot_keeps_state

AGENT = ["playbooks/agent.yml", "-e", "agent_name=mevy"]


def binary_uploads(output):
    """Module binaries copied to the target (the cache's staged uploads)."""
    return re.findall(r"PUT \S+/library/(\w+) TO \S+/warden-binary", output)


def test_agent_over_ssh_without_python_then_nothing_to_do(sandbox, sshd):
    cache = sandbox.path / "cache"
    extra = sshd.extra_vars(warden_binary_dir=str(cache))
    rc, out, recap = sandbox.playbook(*AGENT, "-e", extra, "-vvv")
    assert rc == 0, out
    # One run task per host (README, "One round trip per host"); its items are the steps.
    assert recap["sim1"]["changed"] == 1 and recap["sim1"]["failed"] == 0, out
    assert len(re.findall(r"^changed: \[sim1\] => \(item=mevy ", out, re.MULTILINE)) >= 6, out
    assert "SSH: EXEC ssh" in out, "the run did not go over ssh"
    uploaded = binary_uploads(out)
    assert sorted(uploaded) == sorted(
        ["warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"]
    ), uploaded
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == sorted(
        ["warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"]
    )
    assert sandbox.tool("service", "mevy", "status").returncode == 0
    env_file = sandbox.root() / "home" / "mevy" / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    password = (sandbox.path / "secrets" / "sim1" / "mevy-db").read_text().strip()
    assert f"WARDEN_DB_PASSWORD={password}" in env_file.read_text()
    assert password not in out

    rc, out, recap = sandbox.playbook(*AGENT, "-e", extra, "-vvv")
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert binary_uploads(out) == [], "the second run uploaded a module binary again"
    # One remote command per module task: no per-task temp dir, no args upload.
    assert "AnsiballZ_" not in out
    assert_reboot_keeps_state(sandbox)


def test_plain_library_path_over_ssh(sandbox, sshd):
    extra = sshd.extra_vars(warden_binary_cache=False)
    rc, out, recap = sandbox.playbook(*AGENT, "--tags", "network,pf", "-e", extra, "-vvv")
    assert rc == 0 and recap["sim1"]["changed"] == 1, out
    assert len(re.findall(r"^changed: \[sim1\] => \(item=mevy (network|pf)\)", out, re.MULTILINE)) == 2, out
    assert "AnsiballZ_warden_bridge_alias" in out
    rc, out, recap = sandbox.playbook(*AGENT, "--tags", "network,pf", "-e", extra)
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert_reboot_keeps_state(sandbox)


def test_the_targets_platform_picks_the_binary(sandbox, sshd, tmp_path):
    """The plugin runs library/<module>_<system>_<arch> for the target's `uname -s -m` (or the
    warden_platform variable), and says what it looked for when that build is missing."""
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(REPO / "library" / "warden_bridge_alias", library / "warden_bridge_alias")
    fake = library / "warden_bridge_alias_freebsd_amd64"
    fake.write_text('#!/bin/sh\nprintf \'{"changed": false, "msg": "the freebsd_amd64 build ran with %s"}\' "$1"\n')
    fake.chmod(0o755)
    env = {"ANSIBLE_LIBRARY": str(library)}

    def adhoc(*extra):
        args = ["-m", "warden_bridge_alias", "-a", "addresses=10.0.1.1/24", "-e", sshd.extra_vars(warden_binary_dir=str(tmp_path / "cache"))]
        done = subprocess.run(
            [BIN / "ansible", "sim1", *args, *extra], cwd=REPO, env={**sandbox.env(), **env}, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout + done.stderr

    rc, out = adhoc("-e", "warden_platform=freebsd_amd64")
    assert rc == 0 and "the freebsd_amd64 build ran with /dev/stdin" in out, out
    rc, out = adhoc()  # uname -s -m over ssh: linux x86_64, which this library lacks
    assert rc != 0, out
    assert f"no warden_bridge_alias binary for linux_{platform.machine()}" in out, out
    assert "warden_binary_cache: false" in out


def test_host_key_checking_is_on_outside_the_test_inventories(sshd, tmp_path):
    """Regression: ansible.cfg set host_key_checking = False for every inventory, so a real
    host's changed key went unnoticed. Now an unknown host key stops the connection; only the
    sandbox and test inventories switch checking off, explicitly."""
    dump = subprocess.run([BIN / "ansible-config", "dump", "--format", "json"], cwd=REPO,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, capture_output=True, text=True, check=False)
    setting = next(s for s in json.loads(dump.stdout) if s["name"] == "HOST_KEY_CHECKING")
    assert setting["value"] is True, setting
    for example in sorted((REPO / "inventory").glob("*.yml")):
        if example.name != "sandbox.yml":
            text = example.read_text()
            assert "host_key_checking" not in text and "StrictHostKeyChecking" not in text, example

    known_hosts = tmp_path / "known_hosts"
    known_hosts.touch()
    target = tmp_path / "agent.env"
    args = json.dumps({"path": str(target), "values": {"AGENT_NAME": "mevy"}})
    extra = json.loads(sshd.extra_vars(warden_binary_dir=str(tmp_path / "cache")))
    extra["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={known_hosts}"
    done = subprocess.run(
        [BIN / "ansible", "target", "-i", "target,", "-m", "warden_env", "-a", args, "-e", json.dumps(extra)],
        cwd=REPO, env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}, capture_output=True, text=True, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "Host key verification failed" in out, out
    assert not target.exists()
