"""Attacks on the modules as root by the users root works for (issue 14). The modules run as
root, as on a real host; the attacker is an unprivileged user who owns the directory the
module writes into: the agent's workdir (a throw-away system user, `warden-attacker`, made
if missing and left in place, since other test sessions on this machine may use it), or the
PostgreSQL data directory (the sandbox server's `postgres` user). A planted link is refused
with nothing of its target read, changed or shown; a user swapping links while root writes
changes no file outside their own directory; a hung tool is killed at `tool_timeout` and
the host lock is free again; check-mode logs of warden-cron are private; a module holding a
password dumps no core."""

import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, base_args

ATTACKER = "warden-attacker"
CANARY = "HOST-CANARY-7f3a: root:*:0:0::0:0:Charlie &:/root:/bin/sh"


@pytest.fixture(scope="module")
def attacker():
    if os.geteuid() != 0:
        pytest.skip("the attack tests run the modules as root and the attacker as an unprivileged user: run them as root (CI does)")
    try:
        return pwd.getpwnam(ATTACKER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", ATTACKER],
            check=True,
        )
        return pwd.getpwnam(ATTACKER)


@pytest.fixture(scope="module")
def shared_host(agent_host_factory):
    return agent_host_factory()


@pytest.fixture
def host(shared_host):
    yield shared_host
    shared_host.assert_clawdie_intact()


def as_user(uid, gid, argv, **kw):
    return subprocess.run(list(map(str, argv)), user=uid, group=gid, extra_groups=[], check=True, **kw)


def host_file(host, name="master.passwd"):
    """A root-owned 0644 file outside any directory the attacker owns: what they aim at."""
    path = host.tmp / name
    path.write_text(CANARY + "\n")
    path.chmod(0o644)
    os.chown(path, 0, 0)
    return path


def fingerprint(path):
    st = path.lstat()
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, hashlib.sha256(path.read_bytes()).hexdigest())


def run(host, module, args):
    done = host.run(module, json.dumps(args))
    return done.returncode, (json.loads(done.stdout) if done.stdout.strip() else {}), done.stdout + done.stderr


def agent_workdir(host, pw, name):
    work = host.root / "home" / name
    work.mkdir(parents=True, exist_ok=True)
    os.chown(work, pw.pw_uid, pw.pw_gid)
    work.chmod(0o755)
    return work


def env_args(host, work, **more):
    return {**base_args(host, "warden_env"), "path": str(work / ".env"), "owner": ATTACKER, "mode": "0600", **more}


def test_a_planted_env_symlink_is_refused_and_its_target_neither_changed_nor_shown(host, attacker):
    work = agent_workdir(host, attacker, "nova")
    target = host_file(host)
    as_user(attacker.pw_uid, attacker.pw_gid, ["ln", "-s", target, work / ".env"])
    before = fingerprint(target)
    for extra in (
        {},
        {"_ansible_diff": True},
        {"_ansible_check_mode": True, "_ansible_diff": True},
        {"state": "absent", "_ansible_diff": True},
    ):
        rc, result, raw = run(host, "warden_env", env_args(host, work, **extra))
        assert rc == 1 and result["failed"] is True, result
        assert f"refusing {work / '.env'}: it is a symbolic link" in result["msg"], result["msg"]
        assert "HOST-CANARY" not in raw and "diff" not in result, raw
    assert fingerprint(target) == before
    assert (work / ".env").is_symlink()
    (work / ".env").unlink()


def test_a_planted_pg_hba_symlink_is_refused_and_its_target_neither_changed_nor_shown(host, attacker):
    hba = host.box.path / "pg" / "data" / "pg_hba.conf"
    owner = hba.parent.stat()
    assert owner.st_uid != 0, "the sandbox's PostgreSQL runs as root?"
    target = host_file(host, "shadow")
    before = fingerprint(target)
    kept = hba.parent / "pg_hba.conf.kept"
    as_user(owner.st_uid, owner.st_gid, ["mv", hba, kept])
    as_user(owner.st_uid, owner.st_gid, ["ln", "-s", target, hba])
    try:
        for extra in ({"_ansible_diff": True}, {"_ansible_check_mode": True, "_ansible_diff": True}):
            rc, result, raw = run(host, "warden_db", {**base_args(host, "warden_db"), **extra})
            assert rc == 1 and result["failed"] is True, result
            assert f"refusing {hba}: it is a symbolic link" in result["msg"], result["msg"]
            assert "HOST-CANARY" not in raw and "diff" not in result, raw
        assert fingerprint(target) == before
        assert hba.is_symlink(), "the link was replaced by a root-owned copy of its target"
        assert host.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'nova'") == "0"
    finally:
        as_user(owner.st_uid, owner.st_gid, ["rm", "-f", hba])
        as_user(owner.st_uid, owner.st_gid, ["mv", kept, hba])


SWAPPER = r"""
import os, sys
work, target, stop, report = sys.argv[1:5]
os.chdir(work)
swapped = planted = loops = 0
while not os.path.exists(stop):
    loops += 1
    for name in os.listdir("."):
        if name.startswith(".warden-") and not os.path.islink(name):
            try:
                os.rename(name, "taken" + name)
                os.symlink(target, name)
                swapped += 1
            except OSError:
                pass
    # Half the time .env itself is a link to the target, half the time it is left alone.
    try:
        if (loops // 64) % 2 == 0 and not os.path.islink(".env"):
            os.rename(".env", "old.env") if os.path.exists(".env") else None
            os.symlink(target, ".env")
            planted += 1
        elif (loops // 64) % 2 == 1 and os.path.islink(".env"):
            os.unlink(".env")
    except OSError:
        pass
    for name in os.listdir("."):
        if name.startswith("taken") or name == "old.env":
            try:
                os.unlink(name)
            except OSError:
                pass
with open(report, "w") as f:
    f.write(f"{loops} {swapped} {planted}\n")
"""


def test_a_symlink_swapping_owner_racing_200_writes_changes_no_host_file(host, attacker):
    work = agent_workdir(host, attacker, "race")
    target = host_file(host, "race-target")
    before = fingerprint(target)
    others = {rel: v for rel, v in host.box.snapshot().items() if not rel.startswith(("home/race", "usr/home/race"))}
    script = host.tmp / "swapper.py"
    script.write_text(SWAPPER)
    stop, report = host.tmp / "race.stop", host.tmp / "race.report"
    report.touch()
    os.chown(report, attacker.pw_uid, attacker.pw_gid)
    # The system's Python: the test's own may live where the attacker cannot read.
    python = shutil.which("python3", path="/usr/bin:/bin:/usr/local/bin")
    assert python, "the swapper needs a python3 the attacker can run"
    swapper = subprocess.Popen(
        [python, script, work, target, stop, report], user=attacker.pw_uid, group=attacker.pw_gid, extra_groups=[]
    )
    outcomes = {"written": 0, "refused: a link": 0, "refused: swapped during the write": 0, "refused: temporary file taken": 0}
    other = []
    try:
        for n in range(200):
            rc, result, raw = run(host, "warden_env", env_args(host, work, values={"AGENT_NAME": "race", "RUN": str(n)}))
            assert "HOST-CANARY" not in raw
            if rc == 0:
                outcomes["written"] += 1
            elif "is a symbolic link" in result["msg"]:
                outcomes["refused: a link"] += 1
            elif "was replaced by someone else while warden wrote it" in result["msg"]:
                outcomes["refused: swapped during the write"] += 1
            elif "cannot replace" in result["msg"]:
                outcomes["refused: temporary file taken"] += 1
            else:
                other.append(result["msg"])
    finally:
        stop.touch()
        swapper.wait(timeout=30)
    loops, swapped, planted = map(int, report.read_text().split())
    print(f"\n200 writes against a swapper ({loops} loops, {swapped} temporary files swapped, {planted} links planted): {outcomes}")
    assert not other, other
    assert fingerprint(target) == before, "the host file changed"
    after = {rel: v for rel, v in host.box.snapshot().items() if not rel.startswith(("home/race", "usr/home/race"))}
    assert after == others, "a file outside the attacker's directory changed"
    assert outcomes["written"] > 0 and outcomes["refused: a link"] > 0, outcomes
    # Temporary files the swapper took are left in its own directory only (home -> usr/home).
    assert not [p for p in host.tmp.rglob(".warden-*") if not str(p).startswith(str(work.resolve()))]


# (module, tool, substring of the call that hangs): the first host tool each module runs,
# or for warden_rcd the start it applies (the run is then rolled back).
HANGS = [
    ("warden_bridge_alias", "ifconfig", "warden0"),
    ("warden_pf_net", "pfctl", "-s"),
    ("bastille_jail", "bastille", ""),
    ("warden_rcd", "service", "nova start"),
]


@pytest.mark.parametrize("module, tool, needle", HANGS, ids=[h[0] for h in HANGS])
def test_a_hanging_tool_fails_within_tool_timeout_and_frees_the_host_lock(host, module, tool, needle):
    for name in ("faults", "hanging", "release"):
        (host.root / "sim" / name).unlink(missing_ok=True)
    before = host.tree_hash()
    with open(host.root / "sim" / "faults", "a") as f:
        f.write(f"{tool}\t{needle}\thang\t\t1\n")
    timeout = 3
    started = time.monotonic()
    rc, result, _ = run(host, module, {**base_args(host, module), "tool_timeout": timeout})
    elapsed = time.monotonic() - started
    print(f"\n{module}: {tool} hung; the task failed after {elapsed:.2f} s (tool_timeout {timeout} s)")
    assert (host.root / "sim" / "hanging").exists(), "the tool never hung"
    assert rc == 1 and result["failed"] is True, result
    assert f"did not finish within {timeout} s (tool_timeout) and was killed with its process group" in result["msg"], result["msg"]
    assert result["cmd"].startswith(str(host.box.path / "bin" / tool)) and result["rc"] == -9, result
    assert elapsed < timeout + 10, elapsed
    # The hung tool is gone (killed with its group), not merely abandoned.
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True).stdout
    alive = [line for line in ps.splitlines() if str(host.box.path / "bin" / tool) in line and not line.lstrip().startswith("Z")]
    assert not alive, alive
    assert host.tree_hash() == before, "the failed run left the host changed"
    (host.root / "sim" / "hanging").unlink()
    # The lock is free: a second run gets it at once and finishes the job.
    rc, again, _ = run(host, module, {**base_args(host, module), "lock_timeout": 0})
    assert rc == 0, again.get("msg", again)
    rc, third, _ = run(host, module, base_args(host, module))
    assert rc == 0 and third["changed"] is False, third


def test_warden_cron_logs_privately(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir(mode=0o755)
    fake = tmp_path / "ansible-playbook"
    fake.write_text('#!/bin/sh\necho "warden drift: sim1: 0 changed"\necho "{}" > "$WARDEN_DRIFT_REPORT"\n')
    fake.chmod(0o755)
    env = dict(os.environ, WARDEN_CRON_LOGDIR=str(logdir), ANSIBLE_PLAYBOOK=str(fake))
    env.pop("WARDEN_CRON_LOCK", None)
    done = subprocess.run([REPO / "bin" / "warden-cron", "--check"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "sim1: 0 changed" in done.stdout
    assert logdir.stat().st_mode & 0o777 == 0o700
    made = sorted(p.name for p in logdir.iterdir())
    assert len(made) == 3 and "warden-cron.lock" in made, made
    assert all((logdir / name).stat().st_mode & 0o777 == 0o600 for name in made), [
        (n, oct((logdir / n).stat().st_mode)) for n in made
    ]
    # A log directory that is a link, or a lock that is one, is refused.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "linked-logs"
    link.symlink_to(elsewhere)
    refused = subprocess.run([REPO / "bin" / "warden-cron"], env={**env, "WARDEN_CRON_LOGDIR": str(link)}, capture_output=True, text=True, check=False)
    assert refused.returncode == 73 and "symbolic link" in refused.stderr, refused
    assert not list(elsewhere.iterdir())
    (logdir / "warden-cron.lock").unlink()
    (logdir / "warden-cron.lock").symlink_to(elsewhere / "x")
    refused = subprocess.run([REPO / "bin" / "warden-cron"], env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 73 and "symbolic link" in refused.stderr, refused
    assert not (elsewhere / "x").exists()


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads another process's limits from /proc (Linux)")
def test_a_module_holding_a_password_dumps_no_core(host):
    # A server that accepts the connection and never answers keeps warden_db waiting.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(20)
        args = {**base_args(host, "warden_db"), "login_port": server.getsockname()[1], "connect_timeout": 30}
        proc = host.start("warden_db", args)
        try:
            conn, _ = server.accept()
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
            conn.close()
        finally:
            proc.kill()
            proc.communicate()
    line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"], line

