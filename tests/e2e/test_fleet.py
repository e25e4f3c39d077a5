"""The fleet: 20 simulated bhyve VMs with one agent each, rolled out by fleet.yml from cron
(bin/warden-cron): batches, a failure budget, drift reports, no overlapping runs."""

import json
import subprocess
import time

import pytest
from conftest import BIN, REPO, assert_reboot_keeps_state


def cron(fleet, *args, logdir):
    env = fleet.env()
    env.update(
        WARDEN_CRON_LOGDIR=str(logdir),
        WARDEN_CRON_LOCK=str(logdir / "lock"),
        ANSIBLE_PLAYBOOK=str(BIN / "ansible-playbook"),
    )
    return subprocess.run(
        [REPO / "bin" / "warden-cron", *args, "-i", fleet.inventory, "-e", "warden_fleet_group=fleet"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )


def report(logdir, mode):
    files = sorted(logdir.glob(f"*-{mode}.json"))
    return json.loads(files[-1].read_text())


def test_twenty_vms_from_cron_then_no_drift(fleet, tmp_path):
    logdir = tmp_path / "logs"
    first = cron(fleet, logdir=logdir)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = [line for line in first.stdout.splitlines() if line.startswith("sim")]
    assert len(lines) == 20 and all(" changed: " in line for line in lines), first.stdout
    for n in (1, 20):
        host = f"sim{n:02d}"
        assert fleet.tool("service", f"agent{n:02d}", "status", host=host).returncode == 0
        assert "10.0.0.1 netmask 0xffffff00" in fleet.tool("ifconfig", "warden0", host=host).stdout
    log = next(logdir.glob("*-apply.log")).read_text()
    assert "sim01: ok (agents: agent01)" in log and "sim20: ok (agents: agent20)" in log, log[-3000:]

    time.sleep(1)  # a new timestamp for the next run's files
    second = cron(fleet, logdir=logdir)
    assert second.returncode == 0, second.stdout
    assert sorted(line for line in second.stdout.splitlines() if line.startswith("sim")) == [
        f"sim{n:02d}: 0 changed" for n in range(1, 21)
    ], second.stdout
    assert all(host["changed"] == 0 for host in report(logdir, "apply")["hosts"].values())
    for n in range(1, 21):
        assert_reboot_keeps_state(fleet, f"sim{n:02d}")

    time.sleep(1)
    check = cron(fleet, "--check", logdir=logdir)
    assert check.returncode == 0
    assert report(logdir, "check")["check_mode"] is True
    assert all(line.endswith(": 0 would change") for line in check.stdout.splitlines() if line.startswith("sim"))

    # Drift on one VM shows up in the check run's line for that VM only.
    rc_conf = fleet.root("sim07") / "etc" / "rc.conf"
    rc_conf.write_text(rc_conf.read_text().replace('agent07_enable="YES"', 'agent07_enable="NO"'))
    time.sleep(1)
    check = cron(fleet, "--check", logdir=logdir)
    drifted = [line for line in check.stdout.splitlines() if line.startswith("sim") and not line.endswith(": 0 would change")]
    assert drifted == ["sim07: 1 would change: warden_service : Install and run the agent's rc.d service"], check.stdout
    tasks = report(logdir, "check")["hosts"]["sim07"]["tasks"]
    assert [(d["added"], d["removed"]) for d in tasks[0]["diff"] if d["header"].endswith("rc.conf")] == [(1, 1)], tasks


@pytest.mark.fleet_size(2)
def test_runs_never_overlap(fleet, tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    holder = subprocess.Popen(["flock", logdir / "lock", "sleep", "5"])
    time.sleep(0.5)
    blocked = cron(fleet, logdir=logdir)
    holder.wait()
    assert blocked.returncode == 75, blocked.stdout + blocked.stderr
    assert "another run holds" in blocked.stderr


@pytest.mark.fleet_size(4)
def test_a_failing_vm_stays_within_the_failure_budget(fleet, tmp_path):
    # One VM of four has an agent setting that fails validation.
    text = fleet.inventory.read_text().replace("system_locale: sl_SI.UTF-8", "system_locale: sl_SI.ISO8859-2", 1)
    fleet.inventory.write_text(text)
    logdir = tmp_path / "logs"
    run = cron(fleet, "-e", "warden_fleet_max_fail_percentage=50", "-e", "warden_fleet_batch=4", logdir=logdir)
    assert run.returncode != 0
    lines = sorted(line for line in run.stdout.splitlines() if line.startswith("sim"))
    assert lines[0].startswith("sim01: FAILED"), run.stdout
    assert all(" changed: " in line for line in lines[1:]), run.stdout
    for n in range(1, 5):
        assert_reboot_keeps_state(fleet, f"sim{n:02d}")


@pytest.mark.fleet_size(4)
def test_shards_on_two_controllers_then_one_merged_report(fleet, tmp_path):
    """A fleet split across controllers: each shard (--limit, or a group) is its own warden-cron
    with its own lock and log directory, running at the same time; bin/warden-drift-merge
    makes one report of theirs and refuses overlapping shards."""
    shards = {"a": "sim01,sim02", "b": "sim03,sim04"}
    env = {**fleet.env(), "ANSIBLE_PLAYBOOK": str(BIN / "ansible-playbook")}
    procs = {}
    for name, limit in shards.items():
        logdir = tmp_path / name
        procs[name] = subprocess.Popen(
            [REPO / "bin" / "warden-cron", "-i", fleet.inventory, "-e", "warden_fleet_group=fleet", "--limit", limit],
            cwd=REPO, env={**env, "WARDEN_CRON_LOGDIR": str(logdir)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, proc in procs.items():
        out, _ = proc.communicate()
        assert proc.returncode == 0, out
        assert sorted(line.split(":")[0] for line in out.splitlines() if line.startswith("sim")) == shards[name].split(","), out
    reports = [str(next((tmp_path / name).glob("*-apply.json"))) for name in shards]
    merged = tmp_path / "merged.json"
    done = subprocess.run([REPO / "bin" / "warden-drift-merge", "-o", merged, *reports], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(merged.read_text())
    assert sorted(data["hosts"]) == ["sim01", "sim02", "sim03", "sim04"] and data["check_mode"] is False
    assert [s["hosts"] for s in data["shards"]] == [2, 2]
    assert all(host["failed"] == 0 and host["changed"] > 0 for host in data["hosts"].values()), data
    assert sorted(line.split(":")[0] for line in done.stderr.splitlines()) == ["sim01", "sim02", "sim03", "sim04"]

    overlap = subprocess.run([REPO / "bin" / "warden-drift-merge", reports[0], reports[0]], capture_output=True, text=True, check=False)
    assert overlap.returncode == 1 and "the shards overlap" in overlap.stderr and not overlap.stdout
