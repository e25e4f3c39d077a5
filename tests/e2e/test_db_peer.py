"""The db admin password and an unverified peer, through ansible-playbook: a rogue PostgreSQL
server (tests/rogue_pg.py) answers at the address the role connects to, refuses TLS and asks
for the password in clear text. The play fails with a clear message and the rogue never
receives the password; the record it keeps is what the assertions read. Also: the new
connection options of warden_db are validated like every other option (nothing changes)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, base_args
from test_bad_input import assert_clean_failure


class Rogue:
    def __init__(self, tmp_path, *args):
        self.record = tmp_path / "rogue.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, REPO / "tests" / "rogue_pg.py", "--record", self.record, *args],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def events(self):
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def rogue(tmp_path):
    server = Rogue(tmp_path, "--ssl", "no", "--auth", "cleartext")
    yield server
    server.stop()


def admin_password(sandbox):
    env = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())
    return env["PGPASSWORD"]


def test_playbook_never_gives_the_admin_password_to_a_rogue_db_server(sandbox, rogue):
    password = admin_password(sandbox)
    play = ["playbooks/agent.yml", "-e", "agent_name=mevy", "--tags", "db", "-vvv",
            "-e", f"warden_db_login_port={rogue.port}"]
    # The sandbox's settings, as a real host's: verified TLS against the server's CA.
    rc, out, _ = sandbox.playbook(*play)
    assert rc != 0, out
    assert "sslmode verify-full" in out and "server does not support TLS" in out, out[-3000:]
    assert not any(e["event"] == "startup" for e in rogue.events()), rogue.events()
    # A weak ssl_mode chosen explicitly falls back to plain text; the cleartext request is
    # refused all the same.
    rc, out, _ = sandbox.playbook(*play, "-e", "warden_db_ssl_mode=prefer")
    assert rc != 0, out
    assert "asked for the password in clear text" in out and "it was not sent" in out, out[-3000:]
    events = rogue.events()
    assert any(e["event"] == "startup" and e["params"].get("user") == "postgres" for e in events), events
    assert not any(e["event"] == "message" for e in events), events
    assert password not in rogue.record.read_text()
    assert password not in out


NEW_OPTION_CASES = [
    ({"lock_timeout": 0}, "value of lock_timeout must be between 1 and 86400 seconds, got: 0"),
    ({"statement_timeout": -5}, "value of statement_timeout must be between 1 and 86400 seconds, got: -5"),
    ({"connect_timeout": 0}, "value of connect_timeout must be between 1 and 3600 seconds, got: 0"),
    ({"require_auth": ["kerberos"]}, "require_auth"),
    ({"require_auth": []}, "require_auth is empty"),
    ({"ca_cert": None}, "needs ca_cert"),
]


@pytest.fixture(scope="module")
def host(agent_host_factory):
    return agent_host_factory()


@pytest.mark.parametrize("changes, needle", NEW_OPTION_CASES, ids=[f"warden_db-{i}" for i in range(len(NEW_OPTION_CASES))])
def test_bad_connection_options_change_nothing(host, changes, needle):
    before, catalog = host.tree_hash(), host.catalog()
    args = {k: v for k, v in {**base_args(host, "warden_db"), **changes}.items() if v is not None}
    assert_clean_failure(host, host.run("warden_db", json.dumps(args)), needle, before, catalog)
