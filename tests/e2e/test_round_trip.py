"""One round trip per host (README, "One round trip per host"): agent.yml and fleet.yml run a
host probe and then every step in one remote command (warden_agent_plan, warden_agent_run),
while what a user sees stays per step: changed/failed, msg, --diff, --check, --tags, no_log,
the drift report."""

import json
import re

from conftest import assert_reboot_keeps_state

AGENT = ["playbooks/agent.yml", "-e", "agent_name=mevy"]
BY_ROLE = ["playbooks/agent_by_role.yml", "-e", "agent_name=mevy"]
STEP = re.compile(r"^(ok|changed|failed|skipping): \[sim1\](?: =>)? \(item=mevy (\w+)", re.MULTILINE)


def steps(out):
    """(status, step tag) of each reported step of the run task."""
    return STEP.findall(out)


def test_converged_agent_over_ssh_opens_at_most_two_sessions(sandbox, sshd):
    """Regression: a converged agent.yml opened 15 SSH sessions per host (6 for the Bastille
    `script`, 1 for uname, one per module task). Counted by the loopback sshd itself."""
    extra = sshd.extra_vars(warden_binary_dir=str(sandbox.path / "cache"))
    rc, out, recap = sandbox.playbook(*AGENT, "-e", extra)
    assert rc == 0 and recap["sim1"]["failed"] == 0, out

    before = sshd.sessions()
    rc, out, recap = sandbox.playbook(*AGENT, "-e", extra)
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert sshd.sessions() - before <= 2, (sshd.sessions() - before, out)
    assert [t for _, t in steps(out)] == ["network", "pf", "jails", "jails", "jails", "db", "env", "service"], out

    # The per-step roles, composed as a play of one's own would: the same result, one session a step.
    before = sshd.sessions()
    rc, out, recap = sandbox.playbook(*BY_ROLE, "-e", extra)
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert sshd.sessions() - before >= 8, "the counter does not see per-task sessions"
    assert_reboot_keeps_state(sandbox)


def test_by_role_and_fast_path_agree(sandbox):
    """agent_by_role.yml (the roles one by one) provisions; agent.yml then finds nothing to do."""
    rc, out, recap = sandbox.playbook(*BY_ROLE)
    assert rc == 0 and recap["sim1"]["changed"] >= 6, out
    rc, out, recap = sandbox.playbook(*AGENT)
    assert rc == 0 and recap["sim1"]["changed"] == 0, out
    assert {s for s, _ in steps(out)} == {"ok"}, out


def test_tags_select_the_steps(sandbox):
    rc, out, _ = sandbox.playbook(*AGENT, "--tags", "network,pf")
    assert rc == 0, out
    assert steps(out) == [("changed", "network"), ("changed", "pf")], out
    assert sandbox.tool("service", "mevy", "status").returncode != 0
    rc, out, _ = sandbox.playbook(*AGENT, "--skip-tags", "jails,db")
    assert rc == 0, out
    assert [t for _, t in steps(out)] == ["network", "pf", "env", "service"], out
    assert steps(out)[:2] == [("ok", "network"), ("ok", "pf")], out


def test_check_predicts_each_step_and_changes_nothing(sandbox):
    rc, out, _ = sandbox.playbook(*AGENT)
    assert rc == 0, out
    env_file = sandbox.root() / "home" / "mevy" / ".env"
    env_file.unlink()
    snapshot = sandbox.snapshot()
    rc, out, _ = sandbox.playbook(*AGENT, "--check", "--diff")
    assert rc == 0, out
    assert sandbox.snapshot() == snapshot, "check mode changed the host"
    assert [s for s, t in steps(out) if t == "env"] == ["changed"], out
    assert {s for s, t in steps(out) if t != "env"} == {"ok"}, out
    # The step's own diff, secrets masked.
    assert f"+++ after: {env_file}" in out and "+WARDEN_DB_PASSWORD=********" in out, out
    rc, out, _ = sandbox.playbook(*AGENT, "--diff")
    assert rc == 0 and [t for s, t in steps(out) if s == "changed"] == ["env"], out
    assert env_file.exists()


def test_no_log_secret_is_never_printed_nor_reported(sandbox, tmp_path):
    report = tmp_path / "drift.json"
    rc, out, _ = sandbox.playbook(*AGENT, "--diff", "-vvv", env={"WARDEN_DRIFT_REPORT": str(report)})
    assert rc == 0, out
    password = (sandbox.path / "secrets" / "sim1" / "mevy-db").read_text().strip()
    assert len(password) >= 16 and password not in out
    text = report.read_text()
    assert password not in text
    tasks = json.loads(text)["hosts"]["sim1"]["tasks"]
    # Each step reported as the role task it is, with its step tag and label.
    assert {t["step"] for t in tasks} == {"network", "pf", "jails", "db", "env", "service"}, tasks
    env_task = next(t for t in tasks if t["step"] == "env")
    assert env_task["task"].startswith("warden_env : ") and env_task["action"] == "warden_env", env_task
    assert env_task["item"] == "mevy env" and env_task["diff"], env_task


def test_a_failing_step_stops_the_rest_and_is_reported(sandbox, tmp_path):
    with open(sandbox.root() / "sim" / "faults", "a") as faults:
        faults.write("pfctl\t-f\t1\tpfctl: DIOCADDRULENV: Device busy\n")
    report = tmp_path / "drift.json"
    rc, out, recap = sandbox.playbook(*AGENT, "-v", env={"WARDEN_DRIFT_REPORT": str(report)})
    assert rc != 0 and recap["sim1"]["failed"] == 1, out
    assert steps(out)[:2] == [("changed", "network"), ("failed", "pf")], out
    assert {s for s, t in steps(out)[2:]} == {"skipping"}, out
    assert "Device busy" in out and "not run: mevy pf failed" in out, out
    assert not [c for c in sandbox.calls() if c["tool"] == "bastille" and "create" in c["argv"]]
    assert sandbox.tool("service", "mevy", "status").returncode != 0
    tasks = json.loads(report.read_text())["hosts"]["sim1"]["tasks"]
    failed = [t for t in tasks if t["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["step"] == "pf" and "Device busy" in failed[0]["msg"], tasks
    (sandbox.root() / "sim" / "faults").unlink()
    rc, out, recap = sandbox.playbook(*AGENT)
    assert rc == 0 and [t for s, t in steps(out) if s == "ok"] == ["network"], out


def test_a_run_that_stops_early_runs_nothing_again(sandbox, tmp_path):
    """Regression: when the run itself stopped (here: the binary cache cannot be made, since
    its parent is a file), the first item failed and every later item started another run of
    the steps on the target. Now the first item fails, the rest say so, and no module ran."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    before = sandbox.snapshot()
    rc, out, recap = sandbox.playbook(*AGENT, "-v", "-e", f"warden_binary_dir={blocker}/cache")
    assert rc != 0 and recap["sim1"]["failed"] == 1, out
    assert steps(out)[0] == ("failed", "network"), out
    assert {s for s, _ in steps(out)[1:]} == {"skipping"}, out
    assert "not run or not reported: the run failed at mevy network" in out, out
    assert sandbox.snapshot() == before
