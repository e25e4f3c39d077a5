"""Several agents provisioned at the same moment on one host and one PostgreSQL server lose
nothing; and a canary password shows up nowhere but in the agent's own .env."""

import json
import os
import re
import subprocess
from collections import Counter

import pytest
from conftest import assert_reboot_keeps_state


def agents(sandbox, count):
    user = os.popen("id -un").read().strip()
    return {
        f"ag{n}": {
            "subnet_base": f"10.0.{10 + n}",
            "user": user,
            "workdir": str(sandbox.root() / "home" / f"ag{n}"),
            "command": "exec sleep 3600",
            "system_locale": "sl_SI.UTF-8",
        }
        for n in range(count)
    }


@pytest.mark.parametrize("count", [2, 8])
def test_agents_provisioned_at_once_are_all_there_exactly_once(sandbox, count):
    defined = agents(sandbox, count)
    procs = [
        sandbox.start_playbook("playbooks/agent.yml", "-e", json.dumps({"warden_agents": defined, "agent_name": name}))
        for name in defined
    ]
    for proc in procs:
        rc, out, _ = sandbox.finish(proc)
        assert rc == 0, out[-5000:]

    gateways = [f"10.0.{10 + n}.1" for n in range(count)]
    subnets = [f"10.0.{10 + n}.0/24" for n in range(count)]
    ifconfig = sandbox.tool("ifconfig", "warden0").stdout
    assert Counter(re.findall(r"\tinet (\S+) ", ifconfig)) == Counter(gateways), ifconfig
    rc_conf = (sandbox.root() / "etc" / "rc.conf").read_text()
    persisted = re.findall(r'^ifconfig_warden0(?:_alias(\d+))?="inet (\S+)/24"$', rc_conf, re.MULTILINE)
    assert sorted(a for _, a in persisted) == sorted(gateways), rc_conf
    assert sorted(int(n) for n, _ in persisted if n) == list(range(count - 1)), "aliases are not contiguous"
    include = (sandbox.root() / "etc" / "pf.warden.conf").read_text()
    # The subnet set holds each agent once (each also has its own isolation rules).
    subnet_set = next(line for line in include.splitlines() if line.startswith("warden_net = "))
    for subnet in subnets:
        assert subnet_set.count(subnet) == 1, include
    nat = sandbox.tool("pfctl", "-s", "nat").stdout
    assert Counter(re.findall(r"from (\S+) to", nat)) == Counter(subnets), nat
    jails = sandbox.tool("jls", "name").stdout.split()
    assert Counter(jails) == Counter(f"{a}{k}" for a in defined for k in ("git", "cms", "db")), jails
    for name in defined:
        assert sandbox.tool("service", name, "status").returncode == 0, name
        assert rc_conf.count(f'{name}_enable="YES"') == 1
    pg = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", pg["PGPORT"], "-U", "postgres", "-tAc",
         "SELECT datname FROM pg_database WHERE datname LIKE 'ag%' ORDER BY 1"],
        env={**os.environ, "PGPASSWORD": pg["PGPASSWORD"], "PGSSLMODE": "verify-full",
             "PGSSLROOTCERT": pg["PGSSLROOTCERT"]}, capture_output=True, text=True, check=True,
    )
    assert out.stdout.split() == sorted(defined)
    hba = (sandbox.path / "pg" / "data" / "pg_hba.conf").read_text()
    for subnet in subnets:
        assert hba.count(subnet) == 1, hba

    # And every one of them is converged, and comes back after a reboot.
    for name in list(defined)[:2]:
        rc, out, recap = sandbox.playbook("playbooks/agent.yml", "-e", json.dumps({"warden_agents": defined, "agent_name": name}))
        assert rc == 0 and recap["sim1"]["changed"] == 0, out[-5000:]
    assert_reboot_keeps_state(sandbox)


CANARY = "Canary-7q$Zx'9\"pw"


def test_a_canary_password_is_only_in_the_agents_env(sandbox, tmp_path):
    user = os.popen("id -un").read().strip()
    settings = {
        "subnet_base": "10.0.1",
        "user": user,
        "workdir": str(sandbox.root() / "home" / "mevy"),
        "command": "exec sleep 3600",
        "system_locale": "sl_SI.UTF-8",
        "db_password": CANARY,
    }
    extra = json.dumps({"warden_agents": {"mevy": settings}, "agent_name": "mevy"})
    report = tmp_path / "drift.json"
    outputs = []
    for args in (["--check", "--diff"], ["--diff"], ["--diff"], ["--check", "--diff", "-e", "warden_binary_cache=false"]):
        rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", extra, "-vvv", *args, env={"WARDEN_DRIFT_REPORT": str(report)})
        assert rc == 0, out[-5000:]
        outputs.append(out)
        assert CANARY not in report.read_text()
    # A password change reaches the database and the .env, still unseen.
    changed = json.dumps({"warden_agents": {"mevy": dict(settings, db_password=CANARY + "2")}, "agent_name": "mevy"})
    rc, out, recap = sandbox.playbook("playbooks/agent.yml", "-e", changed, "-vvv", "--diff")
    # One run task per host; its items say which steps changed: the database and the .env.
    changed_steps = re.findall(r"^changed: \[sim1\] => \(item=mevy (\w+)\)", out, re.MULTILINE)
    assert rc == 0 and recap["sim1"]["changed"] == 1 and changed_steps == ["db", "env"], out[-5000:]
    outputs.append(out)
    for out in outputs:
        assert CANARY not in out
        assert "Canary-7q" not in out

    env_file = sandbox.root() / "home" / "mevy" / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    # The file is sh-compatible: sourcing it gives the exact password back.
    read_back = subprocess.run(["sh", "-c", '. "$1"; printf %s "$WARDEN_DB_PASSWORD"', "sh", env_file],
                               capture_output=True, text=True, check=True).stdout
    assert read_back == CANARY + "2"
    found = []
    for path in sandbox.path.rglob("*"):
        # /home is a link to usr/home (as pw(8) leaves it): the .env is found under usr/home.
        if path.is_file() and not path.is_symlink() and path.resolve() != env_file.resolve():
            try:
                if b"Canary-7q" in path.read_bytes():
                    found.append(str(path))
            except PermissionError:
                found.append(f"{path} (unreadable)")
    assert found == [], found
    calls = (sandbox.root() / "sim" / "calls.log").read_text()
    assert "Canary-7q" not in calls
    # The login password of the admin connection stays out of the output as well.
    admin_password = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())["PGPASSWORD"]
    for out in outputs:
        assert admin_password not in out
