"""A fleet from the hypervisor: a simulated bhyve host (vm-bhyve, tests/sim/src/vm.rs) →
playbooks/fleet_vms.yml creates the VMs → the vm_bhyve inventory plugin finds them → agents
provisioned on each guest (a simulated FreeBSD host of its own) → a re-run changes nothing."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO, SIM, Sandbox, free_port

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBhvVMfleet warden@controller"


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plugin = load("inventory_plugins/vm_bhyve.py", "vm_bhyve_plugin")
fleet_filter = load("filter_plugins/warden_vm_fleet.py", "warden_vm_fleet")


class BhyveFleet:
    """A sandbox with one simulated bhyve host `bhyve1` and an inventory directory: the
    vm_bhyve plugin reaching the host through the local command the simulated hosts use,
    and group vars for the VMs like inventory/sandbox.yml's."""

    def __init__(self, path: Path, version="1.7.5"):
        self.tmp = path
        self.box = Sandbox(path / "s", ["bhyve1"])
        self.root = self.box.root("bhyve1")
        self.bin = self.box.path / "bin"
        subprocess.run([REPO / "tests" / "bhyve_host.sh", self.root, self.bin, version], check=True)
        self.port = free_port()
        (self.root / "sim" / "vm-ssh-port").write_text(f"{self.port}\n")
        (self.root / "sim" / "vm-boot-ms").write_text("200\n")
        (self.root / "sim" / "vm-shutdown-ms").write_text("50\n")
        (self.root / "sim" / "calls.log").write_text("")  # the set-up's own calls
        self.inventory = path / "inv"
        (self.inventory / "group_vars").mkdir(parents=True)
        path_var = f"{self.bin}:{os.environ.get('PATH', '')}"
        config = {
            "plugin": "vm_bhyve",
            "hosts": [{
                "name": "bhyve1",
                "command": ["env", f"WARDEN_SIM_ROOT={self.root}", f"PATH={path_var}", "sh", "-c"],
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "warden_root": str(self.root),
                    "warden_environment": {"PATH": path_var, "WARDEN_SIM_ROOT": str(self.root)},
                },
                "vm_vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            }],
            # each simulated guest's root lives in its VM directory
            "compose": {"warden_root": "vm_bhyve_dir ~ '/sim-guest'"},
            "cache": True,
            "cache_plugin": "ansible.builtin.jsonfile",
            "cache_connection": str(path / "inventory-cache"),
        }
        (self.inventory / "fleet.vm_bhyve.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        sandbox = yaml.safe_load((REPO / "inventory" / "sandbox.yml").read_text())
        shared = dict(sandbox["all"]["children"]["warden"]["vars"])
        agent = dict(shared.pop("warden_agents")["mevy"], subnet_base="10.0.0")
        shared.pop("warden_root")
        shared["warden_environment"] = {"PATH": path_var, "WARDEN_SIM_ROOT": "{{ warden_root }}"}
        shared["warden_vm_agent"] = agent
        (self.inventory / "group_vars" / "bhyve_tag_warden.yml").write_text(yaml.safe_dump(shared, sort_keys=False))

    def vars(self, count, **more):
        return json.dumps({
            "warden_vm_count": count,
            "warden_vm_prefix": "vm",
            "warden_vm_address_base": "127.77.0.10/24",
            "warden_vm_gateway": "127.77.0.1",
            "warden_vm_authorized_keys": [KEY],
            "warden_vm_ssh_port": self.port,
            "warden_vm_ssh_timeout": 30,
            **more,
        })

    def playbook(self, name, *args):
        return self.box.playbook(f"playbooks/{name}", "-i", self.inventory, *args)

    def vm(self, *args):
        return self.box.tool("vm", *args, host="bhyve1")

    def guest(self, name):
        return self.root / "vm" / name / "sim-guest"

    def guest_tool(self, name, *argv):
        env = self.box.env()
        env.update(PATH=f"{self.bin}:{env['PATH']}", WARDEN_SIM_ROOT=str(self.guest(name)))
        return subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)

    def inventory_list(self, *args):
        out = subprocess.run([BIN / "ansible-inventory", "-i", self.inventory, "--list", *args],
                             cwd=REPO, env=self.box.env(), capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout, object_hook=plain)

    def vm_calls(self):
        return [c for c in self.box.calls("bhyve1") if c["tool"] == "vm"]

    def close(self):
        subprocess.run([REPO / "tests" / "sandbox.sh", self.box.path, SIM], check=False, capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def bhyve_fleet():
    path = Path(tempfile.mkdtemp(prefix="wfv", dir="/tmp"))
    path.chmod(0o755)
    fleet = BhyveFleet(path)
    yield fleet
    fleet.close()


def plain(obj):
    """ansible-inventory marks values that came from a plugin as unsafe:
    `{"__ansible_unsafe": value}`."""
    return obj.get("__ansible_unsafe", obj) if len(obj) == 1 else obj


def summary(output):
    """The summary play's lines (YAML callback: `- 'vm01 on …'`)."""
    found = (re.match(r"^\s*- '?(vm\d+ on .*?)'?$", line) for line in output.splitlines())
    return sorted(m.group(1) for m in found if m)


def test_twenty_vms_from_the_bhyve_host_then_nothing_changes(bhyve_fleet, capsys):
    f = bhyve_fleet
    started = time.monotonic()
    rc, out, recap = f.playbook("fleet_vms.yml", "-e", f.vars(20))
    first = time.monotonic() - started
    assert rc == 0, out[-6000:]
    lines = summary(out)
    assert len(lines) == 20 and all(": ok (agent agent" in line for line in lines), lines
    assert lines[0] == "vm01 on bhyve1 (127.77.0.11): ok (agent agent01)"

    # The plugin finds all 20, grouped by host, state and tag, addresses from the seeds.
    inv = f.inventory_list()
    vms = sorted(inv["bhyve_tag_warden"]["hosts"])
    assert vms == [f"vm{n:02d}" for n in range(1, 21)]
    assert sorted(inv["bhyve_state_running"]["hosts"]) == vms
    assert sorted(inv["bhyve_host_bhyve1"]["hosts"]) == vms
    assert inv["bhyve_hosts"]["hosts"] == ["bhyve1"]
    hv = inv["_meta"]["hostvars"]["vm07"]
    assert (hv["ansible_host"], hv["vm_bhyve_config"]["warden_agent"], hv["vm_bhyve_version"]) == ("127.77.0.17", "agent07", "1.7.5")
    assert hv["warden_root"] == str(f.guest("vm07"))

    # Each guest runs its agent, on its own warden0.
    for n in (1, 20):
        name = f"vm{n:02d}"
        assert f.guest_tool(name, "service", f"agent{n:02d}", "status").returncode == 0
        assert "10.0.0.1 netmask 0xffffff00" in f.guest_tool(name, "ifconfig", "warden0").stdout
        keys = (f.guest(name) / "home" / "admin" / ".ssh" / "authorized_keys").read_text()
        assert keys == KEY + "\n"

    creates = len([c for c in f.vm_calls() if c["argv"][:1] == ["create"]])
    assert creates == 20
    started = time.monotonic()
    rc, out, recap = f.playbook("fleet_vms.yml", "-e", f.vars(20))
    second = time.monotonic() - started
    assert rc == 0, out[-4000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap
    assert len(recap) == 22, recap  # bhyve1, localhost and the 20 VMs
    assert len([c for c in f.vm_calls() if c["argv"][:1] == ["create"]]) == creates, "the re-run created nothing"
    assert len(summary(out)) == 20
    with capsys.disabled():
        print(f"\n20 VMs from the bhyve host: first run {first:.1f} s, re-run {second:.1f} s")

    # cache: true — with the bhyve host unreadable, the cached inventory still lists the fleet
    config = f.inventory / "fleet.vm_bhyve.yml"
    data = yaml.safe_load(config.read_text())
    data["hosts"][0]["command"] = ["false"]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    assert sorted(f.inventory_list()["bhyve_tag_warden"]["hosts"]) == vms
    assert "bhyve_tag_warden" not in f.inventory_list("--flush-cache"), "flushed, the host is read again (and fails)"


def test_check_mode_on_a_fresh_bhyve_host_changes_nothing(bhyve_fleet):
    f = bhyve_fleet
    before = f.box.snapshot("bhyve1")
    rc, out, recap = f.playbook("fleet_vms.yml", "-e", f.vars(3), "--check", "--diff")
    assert rc == 0, out[-4000:]
    assert recap["bhyve1"]["changed"] == 1, recap  # one loop task that would create three VMs
    assert summary(out) == [f"vm0{n} on bhyve1 (127.77.0.1{n}): would be created (agent agent0{n})" for n in (1, 2, 3)]
    assert f.box.snapshot("bhyve1") == before
    mutating = [c for c in f.vm_calls() if c["argv"][:1] not in (["version"], ["list"], ["datastore"], ["img"], ["iso"])]
    assert mutating == [], mutating


@pytest.mark.parametrize("count", [5])
def test_a_vm_that_never_answers_fails_alone_within_the_budget(bhyve_fleet, count):
    f = bhyve_fleet
    (f.root / "sim" / "vm-unreachable").write_text("vm03\n")
    started = time.monotonic()
    rc, out, recap = f.playbook("fleet_vms.yml", "-e", f.vars(count, warden_vm_ssh_timeout=3, warden_fleet_batch=count,
                                                                 warden_fleet_max_fail_percentage=50))
    elapsed = time.monotonic() - started
    assert rc != 0
    lines = summary(out)
    assert lines[2] == "vm03 on bhyve1 (127.77.0.13): FAILED (agent agent03)", lines
    assert all(": ok (" in line for i, line in enumerate(lines) if i != 2), lines
    assert recap["vm03"]["failed"] == 1 and recap["vm04"]["failed"] == 0, recap
    assert "Timeout when waiting for search string OpenSSH" in out or "Timeout when waiting for 127.77.0.13" in out, out[-3000:]
    assert elapsed < 300


def test_removal_takes_one_vm_and_its_agent_and_leaves_the_others(bhyve_fleet):
    f = bhyve_fleet
    rc, out, _ = f.playbook("fleet_vms.yml", "-e", f.vars(3))
    assert rc == 0, out[-4000:]
    rc, out, recap = f.playbook("fleet_vms_remove.yml", "-e", f.vars(3, warden_vm_remove="vm02"))
    assert rc == 0, out[-4000:]
    assert recap["vm02"]["changed"] > 0 and recap["bhyve1"]["changed"] == 1, recap
    listed = f.vm("list").stdout
    assert "vm02" not in listed and not (f.root / "vm" / "vm02").exists(), listed
    for name, agent in (("vm01", "agent01"), ("vm03", "agent03")):
        assert any(line.startswith(name) and "Running (" in line for line in listed.splitlines()), listed
        assert f.guest_tool(name, "service", agent, "status").returncode == 0
    pg = dict(line.split("=", 1) for line in (f.box.path / "pg" / "env").read_text().split())
    dbs = subprocess.run(["psql", "-h", "127.0.0.1", "-p", pg["PGPORT"], "-U", "postgres", "-tAc",
                          "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'agent%'"],
                         env={**os.environ, "PGPASSWORD": pg["PGPASSWORD"]}, capture_output=True, text=True,
                         check=False).stdout.strip()
    assert dbs == "agent01,agent03", dbs
    rc, out, recap = f.playbook("fleet_vms.yml", "-e", f.vars(3, warden_vm_first=1, warden_vm_count=1))
    assert rc == 0 and recap["vm01"]["changed"] == 0, recap


# The plugin's and the filter's readers, on the recorded layouts (no host needed).

FIXTURES = REPO / "tests" / "fixtures" / "vm"


@pytest.mark.parametrize("name", ["list-1.6.txt", "list-1.7.txt", "list-1.8-devel.txt"])
def test_plugin_reads_vm_list_by_its_header(name):
    rows = plugin.parse_list((FIXTURES / name).read_text())
    assert [r["NAME"] for r in rows][:2] == ["agent01", "agent02"]
    assert plugin.parse_state(rows[0]["STATE"]) == ("running", 4242)
    assert rows[0]["AUTO"] == "Yes [1]"
    locked = next(r for r in rows if r["NAME"] == "old")
    assert plugin.parse_state(locked["STATE"]) == ("locked", None)
    if name == "list-1.8-devel.txt":
        assert rows[0]["TAGS"] == "warden,agent"
    if name != "list-1.6.txt":
        assert plugin.parse_state(next(r for r in rows if r["NAME"] == "sleepy")["STATE"]) == ("suspended", None)


def test_plugin_reads_seed_addresses_in_both_layouts_and_confs_like_config_load():
    v16 = "version: 2\nethernets:\n  id0:\n    set-name: eth0\n    addresses:\n      - 10.0.0.12/24\n    gateway4: 10.0.0.1\n    nameservers:\n      addresses: [1.1.1.1]\n"
    v17 = "version: 2\nethernets:\n  id0:\n    nameservers:\n      addresses: [1.1.1.1]\n    addresses: [10.0.0.13/24]\n"
    assert plugin.network_config_address(v16) == "10.0.0.12/24"
    assert plugin.network_config_address(v17) == "10.0.0.13/24"
    assert plugin.network_config_address("version: 2\nethernets:\n  id0:\n    dhcp4: true\n") is None
    assert plugin.parse_conf('cpu=1 # one\ncpu=4\ntags="a b"\n#x=1\n') == {"cpu": "1", "tags": "a b"}
    assert plugin.parse_version("vm-bhyve: Bhyve virtual machine management v1.6-devel\n") == "1.6-devel"
    ssh = plugin.remote_argv({"name": "b1", "user": "admin", "port": 2222}, ["ssh", "-o", "BatchMode=yes"], "doas")
    assert ssh[:-1] == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "-l", "admin", "b1"] and ssh[-1].startswith("doas sh -c ")
    local = plugin.remote_argv({"name": "b1", "command": ["sh", "-c"]}, ["ssh"], "none")
    assert local[:2] == ["sh", "-c"] and local[2] == ssh[-1][len("doas "):], "the same remote command line either way"


def test_fleet_pattern_deals_vms_round_robin_and_refuses_what_does_not_fit():
    vms = fleet_filter.warden_vm_fleet(["b1", "b2"], 3, prefix="vm", address_base="10.0.0.10/24")
    assert [(v["name"], v["host"], v["address"], v["agent"]) for v in vms] == [
        ("vm01", "b1", "10.0.0.11/24", "agent01"), ("vm02", "b2", "10.0.0.12/24", "agent02"), ("vm03", "b1", "10.0.0.13/24", "agent03")]
    with pytest.raises(Exception, match="10.0.0.255 is not a host address"):
        fleet_filter.warden_vm_fleet(["b1"], 300, prefix="vm", address_base="10.0.0.0/24", digits=3)
    with pytest.raises(Exception, match="no bhyve hosts"):
        fleet_filter.warden_vm_fleet([], 2)
    with pytest.raises(Exception, match="not a vm-bhyve guest name"):
        fleet_filter.warden_vm_fleet(["b1"], 1, prefix="-x")
    assert fleet_filter.warden_vm_fleet(["b1"], 1)[0]["address"] is None


def test_the_plugin_is_documented_for_ansible_doc():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([BIN / "ansible-doc", "-t", "inventory", "vm_bhyve"], cwd=REPO, env=env,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    for option in ("hosts", "ssh_command", "become", "group_prefix", "on_error", "cache", "compose"):
        assert f"{option}" in out.stdout, option
    assert "bhyve_tag_" in out.stdout and "warden.freebsd.vm_bhyve" in out.stdout
