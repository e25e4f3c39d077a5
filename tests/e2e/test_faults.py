"""Faults while a module applies: tools that fail part-way or claim success having done
nothing, a database that goes away, a module killed with SIGKILL, and files as admins write
them. After each, the host is either exactly as before or in a state the next run completes
to the full result; agent clawdie (already on the host) never loses anything."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import REPO, base_args

LOCK_KEY = 0x7761_7264_656E  # warden_db's advisory lock


def fault(host, tool, needle, rc, message="", times=None):
    line = "\t".join([tool, needle, str(rc), message] + ([str(times)] if times else []))
    with open(host.root / "sim" / "faults", "a") as f:
        f.write(line + "\n")


def clear_faults(host):
    for name in ("faults", "hanging", "release"):
        (host.root / "sim" / name).unlink(missing_ok=True)


def run(host, module, args):
    done = host.run(module, json.dumps(args))
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}


def completes(host, module, args, check):
    """The next run finishes the job, the one after changes nothing, and `check` holds."""
    rc, result = run(host, module, args)
    assert rc == 0, result.get("msg", result)
    rc, again = run(host, module, args)
    assert rc == 0 and again["changed"] is False, again
    check()


def failed_cleanly(host, module, args, needle):
    rc, result = run(host, module, args)
    assert rc == 1 and result.get("failed") is True, result
    assert needle.lower() in result["msg"].lower(), result["msg"]
    return result


def has_address(host, addr):
    return f"inet {addr} netmask" in host.tool("ifconfig", "warden0").stdout


@pytest.fixture
def host(agent_host):
    yield agent_host
    agent_host.assert_clawdie_intact()


def test_persisting_the_alias_fails_after_the_runtime_alias(host):
    args = base_args(host, "warden_bridge_alias")
    before = host.tree_hash()
    fault(host, "sysrc", "10.0.5.1", 1, "sysrc: /etc/rc.conf: Read-only file system")
    failed_cleanly(host, "warden_bridge_alias", args, "Read-only file system")
    clear_faults(host)
    assert host.tree_hash() == before and not has_address(host, "10.0.5.1"), "the runtime alias was not rolled back"
    completes(host, "warden_bridge_alias", args, lambda: has_address(host, "10.0.5.1"))


def test_loading_pf_fails_after_the_dry_run_passed(host):
    args = base_args(host, "warden_pf_net")
    before = host.tree_hash()
    fault(host, "pfctl", f"-f {args['pf_conf']}", 1, "pfctl: DIOCADDRULENV: Device busy")
    failed_cleanly(host, "warden_pf_net", args, "Device busy")
    clear_faults(host)
    assert host.tree_hash() == before
    assert "10.0.5.0/24" not in host.tool("pfctl", "-s", "nat").stdout
    completes(host, "warden_pf_net", args, lambda: "10.0.5.0/24" in host.tool("pfctl", "-s", "nat").stdout)


def test_turning_on_forwarding_fails(host):
    args = base_args(host, "warden_pf_net")
    host.tool("sysctl", "net.inet.ip.forwarding=0")
    before = host.tree_hash()
    fault(host, "sysctl", "net.inet.ip.forwarding=1", 1, "sysctl: net.inet.ip.forwarding=1: Operation not permitted")
    failed_cleanly(host, "warden_pf_net", args, "Operation not permitted")
    clear_faults(host)
    assert host.tree_hash() == before
    completes(host, "warden_pf_net", args, lambda: host.tool("sysctl", "-n", "net.inet.ip.forwarding").stdout.strip() == "1")


def test_bastille_create_claims_success_having_done_nothing(host):
    args = base_args(host, "bastille_jail")
    before = host.tree_hash()
    fault(host, "bastille", "create", 0)
    failed_cleanly(host, "bastille_jail", args, "novagit")
    clear_faults(host)
    assert host.tree_hash() == before
    completes(host, "bastille_jail", args, lambda: "novagit" in host.tool("jls", "name").stdout.split())


def test_a_package_install_fails_in_the_new_jail(host):
    args = dict(base_args(host, "bastille_jail"), packages=["git"])
    # In-jail installs run through jexec (docs/bastille-facts.md §6).
    fault(host, "jexec", "novagit env ASSUME_ALWAYS_YES=yes /usr/sbin/pkg install -y git", 1,
          "pkg: No packages available to install matching 'git'")
    failed_cleanly(host, "bastille_jail", args, "No packages available")
    clear_faults(host)
    # Either rolled back or left for the next run: the next run completes it.
    root = host.root / "usr/local/bastille/jails/novagit/root"
    completes(host, "bastille_jail", args, lambda: "git" in host.tool("pkg", "-r", str(root), "query", "%n").stdout.split())


def test_a_jail_service_fails_to_start(host):
    args = dict(base_args(host, "bastille_jail"), packages=["nginx"], services=["nginx"])
    fault(host, "jexec", "novagit /usr/sbin/service nginx start", 1, "nginx: [emerg] bind() failed")
    failed_cleanly(host, "bastille_jail", args, "nginx")
    clear_faults(host)
    completes(host, "bastille_jail", args,
              lambda: host.tool("bastille", "service", "novagit", "nginx", "status").returncode == 0)


def test_the_agent_service_fails_to_start(host):
    args = base_args(host, "warden_rcd")
    before = host.tree_hash()
    fault(host, "service", "nova start", 1, "/usr/local/etc/rc.d/nova: WARNING: failed to start nova")
    failed_cleanly(host, "warden_rcd", args, "nova")
    clear_faults(host)
    assert host.tree_hash() == before, "the script and nova_enable were not rolled back"
    completes(host, "warden_rcd", args, lambda: host.tool("service", "nova", "status").returncode == 0)


def test_the_agent_service_claims_to_start_but_does_not(host):
    args = base_args(host, "warden_rcd")
    before = host.tree_hash()
    fault(host, "service", "nova start", 0, "Starting nova.")
    failed_cleanly(host, "warden_rcd", args, "nova")
    clear_faults(host)
    assert host.tree_hash() == before
    completes(host, "warden_rcd", args, lambda: host.tool("service", "nova", "status").returncode == 0)


def test_the_database_server_is_down(host):
    args = base_args(host, "warden_db")
    catalog = host.catalog()
    cluster = [REPO / "tests" / "pgcluster.sh"]
    subprocess.run([*cluster, "stop", host.box.path / "pg"], check=True, capture_output=True)
    try:
        rc, result = run(host, "warden_db", args)
        assert rc == 1 and result.get("failed") is True, result
        assert "connect" in result["msg"].lower(), result["msg"]
    finally:
        subprocess.run([*cluster, "restart", host.box.path / "pg"], check=True, capture_output=True)
    assert host.catalog() == catalog
    completes(host, "warden_db", args, lambda: host.psql("SELECT count(*) FROM pg_database WHERE datname = 'nova'") == "1")


def test_the_database_connection_is_lost_between_statements(host):
    """The module connects, then waits for warden_db's advisory lock, which another session
    holds; its backend is terminated there, between two statements."""
    args = base_args(host, "warden_db")
    catalog = host.catalog()
    holder = subprocess.Popen(
        ["psql", "-h", "127.0.0.1", "-p", host.pg["PGPORT"], "-U", "postgres", "-c",
         f"SELECT pg_advisory_lock({LOCK_KEY}); SELECT pg_sleep(30);"],
        env={**os.environ, "PGPASSWORD": host.pg["PGPASSWORD"], "PGSSLMODE": "verify-full",
             "PGSSLROOTCERT": host.pg["PGSSLROOTCERT"]}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while host.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") != "1":
            assert time.time() < deadline, "the holder never took the lock"
            time.sleep(0.05)
        module = host.start("warden_db", args)
        waiting = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        while not host.psql(waiting):
            assert time.time() < deadline + 10, "the module never waited for the lock"
            time.sleep(0.05)
        host.psql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        out, _ = module.communicate(timeout=30)
        result = json.loads(out)
        assert module.returncode == 1 and result["failed"] is True, result
        assert "connection" in result["msg"].lower() or "terminat" in result["msg"].lower(), result["msg"]
    finally:
        holder.kill()
        holder.wait()
    assert host.catalog() == catalog
    completes(host, "warden_db", args, lambda: host.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'nova'") == "1")


def killed_while(host, module, args, tool, needle):
    """Runs `module` until `tool` hangs on a call holding `needle`, then SIGKILLs it."""
    fault(host, tool, needle, "hang")
    proc = host.start(module, args)
    deadline = time.time() + 20
    while not (host.root / "sim" / "hanging").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the tool never hung"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (host.root / "sim" / "release").touch()
    time.sleep(0.2)  # the released tool exits having done nothing
    clear_faults(host)


def test_killed_between_the_runtime_alias_and_rc_conf(host):
    args = base_args(host, "warden_bridge_alias")
    killed_while(host, "warden_bridge_alias", args, "sysrc", "10.0.5.1")

    def persisted():
        assert has_address(host, "10.0.5.1")
        assert "10.0.5.1/24" in (host.root / "etc" / "rc.conf").read_text()

    completes(host, "warden_bridge_alias", args, persisted)


def test_killed_while_the_service_starts(host):
    args = base_args(host, "warden_rcd")
    killed_while(host, "warden_rcd", args, "service", "nova start")
    completes(host, "warden_rcd", args, lambda: host.tool("service", "nova", "status").returncode == 0)


def test_rc_conf_as_an_admin_writes_it(host):
    rc_conf = host.root / "etc" / "rc.conf"
    admin = (
        "# Local additions -- do not remove\n"
        "ntpd_enable='YES'   # time matters\n"
        "ifconfig_vtnet1=\"inet 192.168.7.2/24\"\n"
        "jail_list='web db'\n"
    )
    rc_conf.write_text(rc_conf.read_text().replace('cloned_interfaces="bridge0"', "cloned_interfaces='bridge0 tap0'") + admin)
    args = base_args(host, "warden_bridge_alias")

    def kept():
        text = rc_conf.read_text()
        assert admin in text, text
        assert "cloned_interfaces='bridge0 tap0'" in text, text
        assert has_address(host, "10.0.5.1") and "10.0.5.1/24" in text

    completes(host, "warden_bridge_alias", args, kept)


def test_pf_conf_as_an_admin_writes_it(host):
    pf_conf = host.root / "etc" / "pf.conf"
    include = next(line for line in pf_conf.read_text().splitlines() if line.startswith("include"))
    admin = (
        "# /etc/pf.conf -- the firewall\n"
        "ext_if = \"vtnet0\"\n"
        "table <bruteforce> persist\n"
        "set skip on lo0\n"
        f"{include}\n"
        "block in log all\n"
        "pass out quick keep state\n"
        "pass in on $ext_if proto tcp to port { 22 } keep state (max-src-conn 10, overload <bruteforce>)\n"
    )
    pf_conf.write_text(admin)
    args = base_args(host, "warden_pf_net")

    def merged():
        assert pf_conf.read_text() == admin, "pf.conf changed although it includes the file already"
        text = (host.root / "etc" / "pf.warden.conf").read_text()
        assert "10.0.0.0/24" in text and "10.0.5.0/24" in text, text
        nat = host.tool("pfctl", "-s", "nat").stdout
        assert "10.0.5.0/24" in nat and "10.0.0.0/24" in nat, nat

    completes(host, "warden_pf_net", args, merged)


def test_the_suite_is_big_enough():
    names = [n for n in globals() if n.startswith("test_") and n != "test_the_suite_is_big_enough"]
    assert len(names) >= 10, names
