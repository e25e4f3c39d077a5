"""Fixtures for end-to-end tests: real ansible-playbook against fresh simulated hosts."""

import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SIM = Path(os.environ.get("WARDEN_SIM_BIN", REPO / "target" / "debug" / "freebsd-sim"))
RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)


class Sandbox:
    """A directory of simulated hosts, as `make sandbox` builds, used through the
    committed inventory/sandbox.yml (selected with WARDEN_SANDBOX)."""

    def __init__(self, path: Path, hosts):
        self.path = path
        subprocess.run([REPO / "tests" / "sandbox.sh", path, SIM, *hosts], check=True)

    def root(self, host="sim1") -> Path:
        return self.path / "hosts" / host

    def env(self):
        env = dict(os.environ)
        env.update(
            WARDEN_SANDBOX=str(self.path),
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_FORCE_COLOR="0",
            PATH=f"{BIN}:{env.get('PATH', '')}",
        )
        return env

    def start_playbook(self, *args, env=None):
        """Starts ansible-playbook from the repository; finish it with `finish`."""
        return subprocess.Popen(
            [BIN / "ansible-playbook", *map(str, args)],
            cwd=REPO,
            env={**self.env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @staticmethod
    def finish(proc):
        """Waits for a started playbook; returns (rc, output, recap by host)."""
        output, _ = proc.communicate()
        recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"} for m in RECAP.finditer(output)}
        return proc.returncode, output, recap

    def playbook(self, *args, env=None):
        """Runs ansible-playbook from the repository; returns (rc, output, recap by host)."""
        return self.finish(self.start_playbook(*args, env=env))

    def tool(self, tool, *args, host="sim1"):
        env = self.env()
        env["PATH"] = f"{self.path / 'bin'}:{env['PATH']}"
        env["WARDEN_SIM_ROOT"] = str(self.root(host))
        return subprocess.run([tool, *args], env=env, capture_output=True, text=True)

    def calls(self, host="sim1"):
        log = self.root(host) / "sim" / "calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()]

    def snapshot(self, host="sim1"):
        """Every path under the host root with mode and content (minus the simulator's
        own bookkeeping): equal snapshots mean nothing changed."""
        root = self.root(host)
        out = {}
        for path in sorted(root.rglob("*")):
            rel = str(path.relative_to(root))
            if rel in ("sim/calls.log", "sim/faults") or rel.endswith(".lock"):
                continue
            st = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, content)
        return out


def mutating(call):
    """Whether a logged simulator call can change the host (same rule as the Rust tests)."""
    tool, argv = call["tool"], call["argv"]
    if tool == "service":
        return not (argv in (["-e"], ["-l"]) or (len(argv) == 2 and argv[1] in ("status", "onestatus", "enabled", "rcvar", "describe")))
    if tool == "sysrc":
        flags = [a for a in argv if a.startswith("-")]
        if any("x" in f for f in flags):
            return True
        if any("c" in f for f in flags):
            return False
        operands = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] != "-f")]
        return any("=" in a for a in operands)
    if tool == "pfctl":
        flags = "".join(a[1:] for a in argv if a.startswith("-"))
        return any(f in flags for f in "edF") or ("f" in flags and "n" not in flags)
    if tool == "sysctl":
        return any("=" in a for a in argv)
    if tool == "jls":
        return False
    if tool == "pkg":
        return not (len(argv) >= 3 and argv[0] == "-r" and argv[2] in ("query", "info"))
    if tool == "bastille":
        return not (
            argv[:1] in (["-v"], ["--version"], ["version"], ["list"])
            or (len(argv) == 4 and argv[0] == "config" and argv[2] == "get")
            or (len(argv) >= 3 and argv[0] == "pkg" and argv[2] == "query")
            or (len(argv) == 4 and argv[0] == "service" and argv[3] == "status")
        )
    if tool == "ifconfig":
        return not (len(argv) <= 1 or argv[0] in ("-l", "-g", "-C", "-a"))
    return True


@pytest.fixture
def sandbox():
    # Short path: tmux sockets live under it and sun_path is small.
    path = Path(tempfile.mkdtemp(prefix="wsb", dir="/tmp"))
    path.chmod(0o755)  # the sandbox's PostgreSQL runs as another user when tests run as root
    box = Sandbox(path / "s", ["sim1"])
    yield box
    subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    """An sshd of the test's own on a loopback port, with a key made for the test."""

    def __init__(self, path: Path):
        self.path = path
        self.port = free_port()
        self.user = getpass.getuser()
        self.key = path / "client_key"
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path / name], check=True)
        shutil.copy(path / "client_key.pub", path / "authorized_keys")
        config = path / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {path}/host_key\nPidFile {path}/sshd.pid\n"
            f"AuthorizedKeysFile {path}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            "Subsystem sftp internal-sftp\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=open(path / "sshd.log", "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("sshd did not start: " + (path / "sshd.log").read_text())

    def extra_vars(self, **more):
        """Extra vars that turn the sandbox inventory's hosts into SSH targets without Python."""
        return json.dumps(
            {
                "ansible_connection": "ssh",
                "ansible_host": "127.0.0.1",
                "ansible_port": self.port,
                "ansible_user": self.user,
                "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": "/nonexistent/python",
                **more,
            }
        )

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def sshd():
    path = Path(tempfile.mkdtemp(prefix="wssh", dir="/tmp"))
    path.chmod(0o755)
    server = Sshd(path)
    yield server
    server.stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fleet(request):
    """A sandbox of N simulated VMs (N from the test's `fleet_size` marker, default 20), one
    agent each, and its inventory (group `fleet`)."""
    marker = request.node.get_closest_marker("fleet_size")
    count = marker.args[0] if marker else 20
    path = Path(tempfile.mkdtemp(prefix="wfl", dir="/tmp"))
    path.chmod(0o755)
    box = Sandbox(path / "s", [f"sim{n:02d}" for n in range(1, count + 1)])
    box.inventory = path / "fleet.yml"
    subprocess.run([sys.executable, REPO / "tests" / "fleet_inventory.py", str(count), box.inventory], check=True)
    yield box
    subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
