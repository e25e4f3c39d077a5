"""The benchmark's stock-module reference (bench/stock/agent.yml) does agent.yml's work on a
fresh simulated host and is idempotent, so the comparison in `make bench` is a fair one."""

import os
import subprocess


def test_stock_reference_provisions_and_converges(sandbox):
    rc, out, recap = sandbox.playbook("bench/stock/agent.yml", "-e", "agent_name=mevy")
    assert rc == 0, out
    assert recap["sim1"]["changed"] >= 15, out
    rc, out, recap = sandbox.playbook("bench/stock/agent.yml", "-e", "agent_name=mevy")
    assert rc == 0 and recap["sim1"]["changed"] == 0, out

    assert "inet 10.0.1.1 netmask 0xffffff00" in sandbox.tool("ifconfig", "warden0").stdout
    assert "from 10.0.1.0/24" in sandbox.tool("pfctl", "-s", "nat").stdout
    assert sorted(sandbox.tool("jls", "name").stdout.split()) == ["mevycms", "mevydb", "mevygit"]
    assert "nginx is running" in sandbox.tool("bastille", "service", "mevycms", "nginx", "status").stdout
    assert sandbox.tool("service", "mevy", "status").stdout == "mevy is running.\n"
    env_file = sandbox.root() / "home" / "mevy" / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert "WARDEN_DB_IP=10.0.1.5" in env_file.read_text()
    env = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())
    owner = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", env["PGPORT"], "-U", "postgres", "-tAc",
         "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mevy'"],
        env={**os.environ, "PGPASSWORD": env["PGPASSWORD"], "PGSSLMODE": "verify-full",
             "PGSSLROOTCERT": env["PGSSLROOTCERT"]}, capture_output=True, text=True, check=True,
    )
    assert owner.stdout.strip() == "mevy"
