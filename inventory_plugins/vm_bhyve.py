"""Inventory plugin warden.freebsd.vm_bhyve: the bhyve guests of each configured bhyve host,
read with one remote command per host (over SSH, or any command given), grouped by host, state
and tag, with the address to connect to taken from the guest's cloud-init seed."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vm_bhyve
short_description: bhyve guests managed with vm-bhyve, read from each bhyve host
version_added: "0.1.0"
author:
  - warden developers (!UNKNOWN)
description:
  - For each host in O(hosts), runs one command on it (C(ssh) by default, as community.general's iocage
    inventory plugin runs C(iocage list)) that prints C(vm version), C(vm list), C(vm datastore list) and,
    for every guest, its C(<name>.conf) and C(.cloud-init/network-config). vm-bhyve 1.6, 1.7 and 1.8-devel
    are read alike (C(vm list) by its header; the 1.8 TAGS column, else the C(tags) of the conf).
  - Adds every guest as a host named after it, with C(ansible_host) set to the per-guest override in
    the C(vms) of its O(hosts) entry, else to the address of its seed's network-config; and every bhyve host itself, to group
    C(<group_prefix>hosts) with the C(vars) of its O(hosts) entry.
  - "Groups, with O(group_prefix) (default C(bhyve_)): C(bhyve_host_<host>), C(bhyve_state_<state>) (running,
    bootloader, stopped, suspended, locked) and C(bhyve_tag_<tag>)."
  - vm-bhyve needs root; give an O(hosts) entry C(become) (C(doas) or C(sudo), without a password prompt) unless you
    connect as root.
  - The configuration file's name must end with C(vm_bhyve.yml) or C(vm_bhyve.yaml).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The plugin's name; C(warden.freebsd.vm_bhyve) with the collection, C(vm_bhyve) from a checkout.
    required: true
    choices: [warden.freebsd.vm_bhyve, vm_bhyve]
    type: str
  hosts:
    description:
      - The bhyve hosts. A string is a host name reached over SSH. A dict takes C(name) (required, its inventory
        name), C(address) (SSH destination, default the name), C(user), C(port), C(become) (C(none), C(doas) or
        C(sudo); default O(become)), C(command) (a list, the program and arguments that run the remote command
        line, given as the last argument, instead of C(ssh); e.g. C([sh, -c]) for the controller itself),
        C(vars) (variables of the bhyve host), C(vm_vars) (variables of each of its guests) and C(vms) (per-guest
        variables by guest name, e.g. C(ansible_host)).
    type: list
    elements: raw
    required: true
  ssh_command:
    description: The SSH client and its options; the destination and the remote command line are appended.
    type: list
    elements: str
    default: [ssh, -o, BatchMode=yes, -o, ConnectTimeout=10]
  become:
    description: How the remote command gets root on every host that does not say (C(none), C(doas), C(sudo)).
    type: str
    choices: [none, doas, sudo]
    default: none
  timeout:
    description: Seconds the remote command may take on one bhyve host.
    type: int
    default: 60
  group_prefix:
    description: Prefix of every group the plugin makes.
    type: str
    default: bhyve_
  on_error:
    description: C(fail) stops on a bhyve host that cannot be read; C(warn) warns and leaves its guests out.
    type: str
    choices: [fail, warn]
    default: fail
"""

EXAMPLES = r"""
---
# fleet.vm_bhyve.yml: two bhyve hosts over SSH as admin, with doas
plugin: warden.freebsd.vm_bhyve
become: doas
hosts:
  - name: bhyve1
    address: 192.168.122.2
    user: admin
  - name: bhyve2
    user: admin
    vms:
      agent-vm07: {ansible_host: 192.168.50.17}
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/warden/inventory
keyed_groups:
  - key: vm_bhyve_datastore
    prefix: datastore

---
# the controller is the bhyve host
plugin: warden.freebsd.vm_bhyve
hosts:
  - name: localhost
    command: [sh, -c]
    become: doas
"""

import re
import shlex
import subprocess

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

MARK = "@@warden "

# Runs on the bhyve host: everything in one command. vm-bhyve's own listings, then each guest's
# conf and network-config from the datastores `vm datastore list` shows (docs/vm-bhyve-facts.md).
REMOTE_SCRIPT = r"""
vm version || exit 3
echo "@@warden list"
vm list || exit 4
echo "@@warden datastores"
vm datastore list || exit 5
vm datastore list | awk 'NR > 1 && ($2 == "directory" || $2 == "zfs") { print $3 }' |
while IFS= read -r ds; do
  for conf in "$ds"/*/*.conf; do
    [ -f "$conf" ] || continue
    dir=${conf%/*}
    name=${dir##*/}
    [ "$conf" = "$dir/$name.conf" ] || continue
    echo "@@warden conf $name $dir"
    cat "$conf"
    echo
    if [ -f "$dir/.cloud-init/network-config" ]; then
      echo "@@warden network-config $name"
      cat "$dir/.cloud-init/network-config"
      echo
    fi
  done
done
"""

STATES = ("Running", "Bootloader", "Stopped", "Suspended", "Locked")


def parse_version(text):
    """`vm-bhyve: Bhyve virtual machine management v1.7.2` -> `1.7.2`."""
    m = re.search(r"v(\d+\.\d+(?:\.\d+|-devel))", text)
    return m.group(1) if m else None


def parse_list(text):
    """`vm list` read by its header: cells start at the header words' offsets (column(1)
    pads every column to one width), so `Running (4242)` stays one cell."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    if "NAME" not in names or "STATE" not in names:
        raise ValueError(f"`vm list` printed no NAME and STATE header: {header!r}")
    rows = []
    for line in lines[1:]:
        cells = {}
        for i, (name, start) in enumerate(zip(names, starts)):
            end = starts[i + 1] if i + 1 < len(starts) else len(line)
            cells[name] = line[start:end].strip()
        if cells.get("NAME"):
            rows.append(cells)
    return rows


def parse_state(cell):
    """`Running (4242)` -> ("running", 4242); `Locked (h)` -> ("locked", None)."""
    m = re.match(r"^(\w+)(?: \((.*)\))?$", cell.strip())
    if not m or m.group(1) not in STATES:
        return "unknown", None
    word, inner = m.group(1).lower(), m.group(2)
    pid = int(inner) if inner and inner.isdigit() and word in ("running", "bootloader") else None
    return word, pid


def parse_conf(text):
    """A vm-bhyve conf as config::load reads it: lines starting with [a-z], `#` ends the value,
    `"` deleted, the first assignment of a key wins."""
    out = {}
    for line in text.splitlines():
        if not re.match(r"[a-z]", line):
            continue
        kept = line.split("#", 1)[0].rstrip(" ").replace('"', "")
        if "=" in kept:
            key, value = kept.split("=", 1)
            out.setdefault(key, value)
    return out


def network_config_address(text):
    """The first interface address of a network-config, in vm-bhyve's 1.7 (`addresses: [a]`)
    or 1.6 (`addresses:` then `- a`) layout; nameservers' deeper `addresses:` is skipped."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped.startswith("addresses:") or len(line) - len(stripped) > 4:
            continue
        rest = stripped[len("addresses:"):].strip()
        if rest.startswith("["):
            first = rest.strip("[]").split(",")[0].strip()
        elif not rest and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("- "):
            first = lines[i + 1].lstrip()[2:].strip()
        else:
            first = rest
        first = first.strip("\"'")
        if first:
            return first
    return None


def parse_output(text):
    """The remote script's output -> {version, list, datastores, confs, network}."""
    sections = {"version": [], "list": [], "datastores": []}
    confs, network, dirs = {}, {}, {}
    current = sections["version"]
    for line in text.splitlines():
        if line.startswith(MARK):
            words = line[len(MARK):].split(" ", 2)
            kind = words[0]
            if kind in ("list", "datastores"):
                current = sections[kind]
            elif kind == "conf" and len(words) >= 2:
                current = confs.setdefault(words[1], [])
                dirs[words[1]] = words[2] if len(words) > 2 else None
            elif kind == "network-config" and len(words) >= 2:
                current = network.setdefault(words[1], [])
            continue
        current.append(line)
    return {
        "version": parse_version("\n".join(sections["version"])),
        "list": parse_list("\n".join(sections["list"])),
        "confs": {k: parse_conf("\n".join(v)) for k, v in confs.items()},
        "dirs": dirs,
        "network": {k: "\n".join(v) for k, v in network.items()},
    }


def remote_argv(host, ssh_command, default_become):
    """The one command that reads a bhyve host: `command` or ssh, plus the remote command line."""
    become = host.get("become") or default_become or "none"
    line = "sh -c " + shlex.quote(REMOTE_SCRIPT)
    if become != "none":
        line = f"{become} {line}"
    if host.get("command"):
        return [str(a) for a in host["command"]] + [line]
    argv = [str(a) for a in ssh_command]
    if host.get("port"):
        argv += ["-p", str(host["port"])]
    if host.get("user"):
        argv += ["-l", str(host["user"])]
    return argv + [str(host.get("address") or host["name"]), line]


def guests(name, parsed, host):
    """The host vars of one bhyve host's guests."""
    out = {}
    overrides = host.get("vms") or {}
    for row in parsed["list"]:
        vm = row["NAME"]
        conf = parsed["confs"].get(vm, {})
        state, pid = parse_state(row.get("STATE", ""))
        if "TAGS" in row:
            tags = [t for t in row["TAGS"].split(",") if t and t != "-"]
        else:
            tags = conf.get("tags", "").split()
        seed_address = network_config_address(parsed["network"].get(vm, ""))
        hostvars = dict(host.get("vm_vars") or {})
        hostvars.update({
            "vm_bhyve_host": name,
            "vm_bhyve_name": vm,
            "vm_bhyve_state": state,
            "vm_bhyve_pid": pid,
            "vm_bhyve_datastore": row.get("DATASTORE"),
            "vm_bhyve_dir": parsed["dirs"].get(vm),
            "vm_bhyve_loader": row.get("LOADER"),
            "vm_bhyve_cpu": row.get("CPU"),
            "vm_bhyve_memory": row.get("MEMORY"),
            "vm_bhyve_autostart": row.get("AUTO", "No").startswith("Yes"),
            "vm_bhyve_tags": tags,
            "vm_bhyve_address": seed_address.split("/")[0] if seed_address else None,
            "vm_bhyve_version": parsed["version"],
            "vm_bhyve_config": conf,
        })
        if seed_address:
            hostvars["ansible_host"] = seed_address.split("/")[0]
        hostvars.update(overrides.get(vm) or {})
        out[vm] = hostvars
    return out


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "warden.freebsd.vm_bhyve"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("vm_bhyve.yml", "vm_bhyve.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        results = None
        if use_cache and cache:
            try:
                results = self._cache[key]
            except KeyError:
                results = None
        if results is None:
            results = self._read_hosts()
            if use_cache:
                self._cache[key] = results
        self._populate(results)

    def _hosts(self):
        hosts = []
        for entry in self.get_option("hosts"):
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or not entry.get("name"):
                raise AnsibleParserError(f"vm_bhyve: each entry of hosts needs a name: {entry!r}")
            unknown = set(entry) - {"name", "address", "user", "port", "become", "command", "vars", "vm_vars", "vms"}
            if unknown:
                raise AnsibleParserError(f"vm_bhyve: unknown keys for host {entry['name']}: {', '.join(sorted(unknown))}")
            if entry.get("become", "none") not in ("none", "doas", "sudo"):
                raise AnsibleParserError(f"vm_bhyve: become of {entry['name']} must be none, doas or sudo")
            hosts.append(entry)
        return hosts

    def _read_hosts(self):
        results = {"hosts": {}, "guests": {}}
        for host in self._hosts():
            name = host["name"]
            argv = remote_argv(host, self.get_option("ssh_command"), self.get_option("become"))
            try:
                proc = subprocess.run(argv, capture_output=True, timeout=self.get_option("timeout"), check=False)
                text = to_text(proc.stdout, errors="surrogate_or_strict")
                if proc.returncode != 0:
                    raise AnsibleError(
                        f"reading bhyve host {name} failed (`{shlex.join(argv[:-1])} …` exited {proc.returncode}): "
                        f"{to_text(proc.stderr).strip() or text.strip()[-300:]}"
                    )
                parsed = parse_output(text)
                if not parsed["version"]:
                    raise AnsibleError(f"bhyve host {name}: `vm version` printed no version: {text[:200]!r}")
            except (AnsibleError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                if self.get_option("on_error") == "warn":
                    self.display.warning(f"vm_bhyve: skipping {name}: {e}")
                    continue
                raise AnsibleParserError(f"vm_bhyve: {e}") from e
            results["hosts"][name] = dict(host.get("vars") or {}, vm_bhyve_version=parsed["version"])
            for vm, hostvars in guests(name, parsed, host).items():
                if vm in results["guests"] or vm in results["hosts"]:
                    other = results["guests"].get(vm, {}).get("vm_bhyve_host", vm)
                    raise AnsibleParserError(f"vm_bhyve: guest name {vm} is on both {other} and {name}; rename one")
                results["guests"][vm] = hostvars
        return results

    def _populate(self, results):
        prefix = self.get_option("group_prefix")
        strict = self.get_option("strict")
        hosts_group = self.inventory.add_group(self._sanitize_group_name(f"{prefix}hosts"))
        for name, hostvars in results["hosts"].items():
            self.inventory.add_host(name, group=hosts_group)
            for k, v in hostvars.items():
                self.inventory.set_variable(name, k, v)
        for vm, hostvars in results["guests"].items():
            self.inventory.add_host(vm)
            for k, v in hostvars.items():
                self.inventory.set_variable(vm, k, v)
            groups = [f"{prefix}host_{hostvars['vm_bhyve_host']}", f"{prefix}state_{hostvars['vm_bhyve_state']}"]
            groups += [f"{prefix}tag_{t}" for t in hostvars["vm_bhyve_tags"]]
            for g in groups:
                group = self.inventory.add_group(self._sanitize_group_name(g))
                self.inventory.add_child(group, vm)
            self._set_composite_vars(self.get_option("compose"), hostvars, vm, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, vm, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, vm, strict=strict)
