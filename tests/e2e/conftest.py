"""Fixtures for end-to-end tests: real ansible-playbook against fresh simulated hosts."""

import getpass
import hashlib
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
    re.MULTILINE,
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
        return subprocess.run([tool, *args], env=env, capture_output=True, text=True, check=False)

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
            if rel in ("sim/calls.log", "sim/faults", "sim/hanging", "sim/release") or rel.endswith(".lock"):
                continue
            st = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, content)
        return out


IFCONFIG_HEADER = re.compile(r"^(?P<name>[^\s:]+): flags=[0-9a-f]+<(?P<flags>[^>]*)>")
INET = re.compile(r"^\tinet (?P<addr>\S+) netmask 0x(?P<mask>[0-9a-f]{8})")


def interfaces(ifconfig_a):
    """`ifconfig -a` as {name: {up, inet, members, groups, description}}. Addresses and members
    are sets (order differs between a run and a boot); MAC addresses are left out: the simulator
    numbers new interfaces' MACs, while FreeBSD derives a bridge's from the hostid (13.0+)."""
    out, current = {}, None
    for line in ifconfig_a.splitlines():
        header = IFCONFIG_HEADER.match(line)
        if header:
            current = out.setdefault(header["name"], {"up": "UP" in header["flags"].split(","), "inet": [],
                                                      "members": [], "groups": [], "description": None})
            continue
        if current is None:
            continue
        inet = INET.match(line)
        if inet:
            current["inet"].append(f"{inet['addr']}/{int(inet['mask'], 16).bit_count()}")
        elif line.startswith("\tmember: "):
            current["members"].append(line.split()[1])
        elif line.startswith("\tgroups: "):
            current["groups"] = sorted(line.split()[1:])
        elif line.startswith("\tdescription: "):
            current["description"] = line.split(": ", 1)[1]
    for iface in out.values():
        iface["inet"].sort()
        iface["members"].sort()
    return out


def runtime_state(box, host="sim1"):
    """What runs on a simulated host, as opposed to what its files say: interfaces and their
    addresses, the loaded PF rules and whether PF is enabled (and pf.ko loaded, where the
    simulator has kldstat), IP forwarding, each rc.d service's status, the sessions of every
    tmux server whose socket lives under the host, the running jails."""
    root = box.root(host)
    state = {"interfaces": interfaces(box.tool("ifconfig", "-a", host=host).stdout)}
    info = box.tool("pfctl", "-s", "info", host=host).stdout
    state["pf"] = {
        "enabled": info.startswith("Status: Enabled"),
        "nat": sorted(box.tool("pfctl", "-s", "nat", host=host).stdout.splitlines()),
        "rules": sorted(box.tool("pfctl", "-s", "rules", host=host).stdout.splitlines()),
    }
    if (box.path / "bin" / "kldstat").exists():
        state["pf"]["kld"] = box.tool("kldstat", "-q", "-m", "pf", host=host).returncode
    state["forwarding"] = box.tool("sysctl", "-n", "net.inet.ip.forwarding", host=host).stdout.strip()
    rcd = root / "usr" / "local" / "etc" / "rc.d"
    state["services"] = {
        script.name: box.tool("service", script.name, "status", host=host).returncode
        for script in sorted(rcd.iterdir()) if rcd.is_dir()
    }
    tmux = shutil.which("tmux")
    state["tmux"] = {}
    for path in sorted(root.rglob("*")):
        if tmux and path.is_socket():
            listed = subprocess.run([tmux, "-S", path, "list-sessions", "-F", "#{session_name}"],
                                    check=False, capture_output=True, text=True)
            state["tmux"][str(path.relative_to(root))] = sorted(listed.stdout.split()) if listed.returncode == 0 else []
    state["jails"] = sorted(box.tool("jls", "name", host=host).stdout.split())
    return state


def reboot(box, host="sim1"):
    """`freebsd-sim boot`: the host restarts from its files; returns the console text."""
    env = box.env()
    env["PATH"] = f"{box.path / 'bin'}:{env['PATH']}"
    out = subprocess.run([SIM, "boot", box.root(host)], check=False, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def assert_reboot_keeps_state(box, host="sim1"):
    """The state warden left is the state the host boots into: snapshot what runs, reboot,
    compare."""
    before = runtime_state(box, host)
    console = reboot(box, host)
    after = runtime_state(box, host)
    if after != before:
        lines = [f"{host}: a reboot changed the running state"]
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                lines.append(f"  {key}:\n    before: {before.get(key)}\n    after:  {after.get(key)}")
        raise AssertionError("\n".join(lines) + "\nconsole:\n" + console)


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
    if tool in ("jls", "kldstat"):
        return False
    if tool == "jexec":
        # jexec [-l] [-U user] JAIL CMD...: service status and pkg query read only.
        i = 0
        while i < len(argv) and argv[i].startswith("-"):
            i += 2 if argv[i] in ("-u", "-U") else 1
        inner = argv[i + 1:]
        return not ((len(inner) == 3 and inner[2] in ("status", "onestatus"))
                    or (len(inner) >= 2 and inner[1] in ("query", "info")))
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
    path = Path(tempfile.mkdtemp(prefix="wsb", dir="/tmp")).resolve()  # no link on the way: the modules follow none
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
            # VERBOSE logs each session (command, shell or sftp) as "Starting session: ...":
            # openssh-portable session.c, do_exec (a verbose() line), which `sessions` counts.
            "LogLevel VERBOSE\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with open(path / "sshd.log", "w") as log:
            # sshd keeps its own copy of the descriptor.
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config], stderr=log)
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

    def sessions(self):
        """How many SSH sessions (remote commands, sftp transfers) the server has started."""
        return (self.path / "sshd.log").read_text().count("Starting session: ")

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
    path = Path(tempfile.mkdtemp(prefix="wfl", dir="/tmp")).resolve()
    path.chmod(0o755)
    box = Sandbox(path / "s", [f"sim{n:02d}" for n in range(1, count + 1)])
    box.inventory = path / "fleet.yml"
    subprocess.run([sys.executable, REPO / "tests" / "fleet_inventory.py", str(count), box.inventory], check=True)
    yield box
    subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


LIBRARY = REPO / "library"


class AgentHost:
    """A simulated host already running agent clawdie, for modules run by themselves (bad
    input, faults): its state must survive whatever they are given."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="wah", dir="/tmp")).resolve()
        self.tmp.chmod(0o755)
        self.box = Sandbox(self.tmp / "s", ["sim1"])
        rc, out, _ = self.box.playbook("playbooks/agent.yml", "-e", "agent_name=clawdie")
        assert rc == 0, out
        self.root = self.box.root()
        self.pg = dict(line.split("=", 1) for line in (self.box.path / "pg" / "env").read_text().split())
        self.env = self.box.env()
        self.env.update(PATH=f"{self.box.path / 'bin'}:{self.env['PATH']}", WARDEN_SIM_ROOT=str(self.root))

    def p(self, path):
        return f"{self.root}{path}"

    def tree_hash(self):
        digest = hashlib.sha256()
        for rel, (mode, uid, gid, content) in sorted(self.box.snapshot().items()):
            digest.update(f"{rel}\0{mode}\0{uid}\0{gid}\0".encode() + hashlib.sha256(content).digest())
        return digest.hexdigest()

    def catalog(self):
        sql = (
            "SELECT (SELECT string_agg(rolname || ':' || coalesce(rolpassword, ''), ',' ORDER BY rolname) FROM pg_authid)"
            " || '|' || (SELECT string_agg(datname || ':' || datdba::text || ':' || coalesce(datacl::text, ''), ',' ORDER BY datname)"
            " FROM pg_database)"
        )
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", self.pg["PGPORT"], "-U", "postgres", "-tAc", sql],
            env={**os.environ, "PGPASSWORD": self.pg["PGPASSWORD"],
                 "PGSSLMODE": "verify-full", "PGSSLROOTCERT": self.pg["PGSSLROOTCERT"]},
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout + (self.box.path / "pg" / "data" / "pg_hba.conf").read_text()

    def run(self, module, args_text):
        args = self.tmp / "args.json"
        args.write_text(args_text) if args_text is not None else args.unlink(missing_ok=True)
        return subprocess.run([LIBRARY / module, args], env=self.env, capture_output=True, text=True, check=False)

    def start(self, module, args):
        """Starts a module run in the background (its own process group)."""
        path = self.tmp / f"{module}.bg.json"
        path.write_text(json.dumps(args))
        return subprocess.Popen([LIBRARY / module, path], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def tool(self, *argv):
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=False)

    def psql(self, sql):
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", self.pg["PGPORT"], "-U", "postgres", "-tAc", sql],
            env={**os.environ, "PGPASSWORD": self.pg["PGPASSWORD"],
                 "PGSSLMODE": "verify-full", "PGSSLROOTCERT": self.pg["PGSSLROOTCERT"]}, capture_output=True, text=True, check=False,
        )
        return out.stdout.strip()

    def assert_clawdie_intact(self):
        """Agent clawdie's address, NAT subnet, jails, service, database and .env."""
        assert "inet 10.0.0.1 netmask 0xffffff00" in self.tool("ifconfig", "warden0").stdout
        assert "10.0.0.1/24" in (self.root / "etc" / "rc.conf").read_text()
        assert "10.0.0.0/24" in self.tool("pfctl", "-s", "nat").stdout
        assert "10.0.0.0/24" in (self.root / "etc" / "pf.warden.conf").read_text()
        assert {"clawdiegit", "clawdiecms", "clawdiedb"} <= set(self.tool("jls", "name").stdout.split())
        assert self.tool("service", "clawdie", "status").returncode == 0
        assert self.psql("SELECT count(*) FROM pg_database WHERE datname = 'clawdie'") == "1"
        assert (self.root / "home" / "clawdie" / ".env").is_file()

    def close(self):
        subprocess.run([REPO / "tests" / "sandbox.sh", self.box.path, SIM], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def rc_chain(host):
    """The rc.conf chain parameters pointing into the host (never the machine's own files)."""
    return {"rc_conf": host.p("/etc/rc.conf"), "rc_conf_local": host.p("/etc/rc.conf.local"),
            "rc_conf_d": [host.p("/etc/rc.conf.d"), host.p("/usr/local/etc/rc.conf.d")]}


def base_args(host, module):
    """Valid args for a new agent `nova` (10.0.5) on an AgentHost."""
    lock = host.p("/var/run/warden.lock")
    if module == "warden_bridge_alias":
        return {"addresses": ["10.0.5.1/24"], **rc_chain(host), "lock_file": lock}
    if module == "warden_pf_net":
        return {"subnets": ["10.0.5.0/24"], "ext_if": "vtnet0", "path": host.p("/etc/pf.warden.conf"),
                "pf_conf": host.p("/etc/pf.conf"), **rc_chain(host), "lock_file": lock}
    if module == "bastille_jail":
        return {"name": "novagit", "release": "14.2-RELEASE", "ip": "10.0.5.2/24", "gateway": "10.0.5.1",
                "bastille_prefix": host.p("/usr/local/bastille"), **rc_chain(host), "lock_file": lock}
    if module == "warden_db":
        return {"name": "nova", "password": "Nova-pw-1", "login_host": "127.0.0.1", "login_port": int(host.pg["PGPORT"]),
                "login_user": "postgres", "login_password": host.pg["PGPASSWORD"], "ssl_mode": "verify-full",
                "ca_cert": host.pg["PGSSLROOTCERT"],
                "pg_hba_file": str(host.box.path / "pg" / "data" / "pg_hba.conf"), "pg_hba_address": "10.0.5.0/24"}
    if module == "warden_env":
        # /home is a link to usr/home on the simulated host (as pw(8) leaves it); the role
        # passes the layout's trusted_links, and so does this.
        return {"path": host.p("/home/nova/.env"), "values": {"AGENT_NAME": "nova"}, "create_parent": True,
                "trusted_links": [host.p("/home")]}
    if module == "warden_rcd":
        return {"name": "nova", "user": os.popen("id -un").read().strip(), "workdir": host.p("/home/nova"),
                "command": "sleep 3600", "system_locale": "sl_SI.UTF-8", "tmux_path": shutil.which("tmux"),
                "tmux_socket": host.p("/var/run/nova.tmux"), "rcd_dir": host.p("/usr/local/etc/rc.d"),
                **rc_chain(host), "rc_subr": host.p("/etc/rc.subr"),
                "locale_dir": host.p("/usr/share/locale"), "owner": os.popen("id -un").read().strip(),
                "group": os.popen("id -gn").read().strip(), "lock_file": lock}
    raise ValueError(module)


@pytest.fixture(scope="module")
def agent_host_factory():
    """Makes AgentHosts that live as long as the test module."""
    made = []

    def make():
        made.append(AgentHost())
        return made[-1]

    yield make
    for h in made:
        h.close()


@pytest.fixture
def agent_host():
    h = AgentHost()
    yield h
    h.close()
