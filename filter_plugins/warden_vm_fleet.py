"""The VM pattern of playbooks/fleet_vms.yml, expanded once on the controller: which bhyve host
gets which VM, its name, address and agent. Kept out of Jinja so the arithmetic and the checks
(vm-bhyve names, addresses inside the subnet) live in one tested place."""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

# vm-bhyve util::check_name on FreeBSD 13+ (lib/vm-util): docs/vm-bhyve-facts.md
VM_NAME = re.compile(r"^[a-z0-9][.a-z0-9_-]{0,229}[a-z0-9]$", re.IGNORECASE)
AGENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def warden_vm_fleet(hosts, count, prefix="agent-vm", first=1, address_base=None, agent_prefix="agent", digits=2):
    """VMs ``first`` … ``first + count - 1``, dealt round-robin over ``hosts`` (in order):
    ``[{"index", "name", "host", "address" (CIDR or None), "ip", "prefix", "agent"}]``.

    ``address_base`` is a host address with prefix (``10.0.0.10/24``): VM n gets the base plus
    n, in the same subnet, never its network or broadcast address."""
    hosts = list(hosts or [])
    try:
        count, first, digits = int(count), int(first), int(digits)
    except (TypeError, ValueError) as e:
        raise AnsibleFilterError(f"warden_vm_fleet: count, first and digits must be integers: {e}") from e
    problems = []
    if count < 0 or first < 0:
        problems.append("count and first must not be negative")
    if count and not hosts:
        problems.append("no bhyve hosts to create VMs on (is the bhyve hosts group empty?)")
    base = None
    if address_base:
        try:
            base = ipaddress.IPv4Interface(str(address_base))
        except ValueError as e:
            problems.append(f"address_base {address_base!r} is not an IPv4 address with a prefix such as 10.0.0.10/24 ({e})")
    vms = []
    for n in range(first, first + max(count, 0)):
        number = f"{n:0{digits}d}"
        name = f"{prefix}{number}"
        agent = f"{agent_prefix}{number}"
        if not VM_NAME.match(name):
            problems.append(f"VM name {name!r} is not a vm-bhyve guest name")
        if not AGENT_NAME.match(agent):
            problems.append(f"agent name {agent!r} is not an agent name ([a-z][a-z0-9_]*, at most 31)")
        address = ip = None
        if base is not None:
            addr = base.ip + n
            net = base.network
            if addr not in net or (net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address)):
                problems.append(f"VM {name}: {base.ip} + {n} = {addr} is not a host address of {net}")
            address, ip = f"{addr}/{net.prefixlen}", str(addr)
        vms.append({
            "index": n,
            "name": name,
            "host": hosts[(n - first) % len(hosts)] if hosts else None,
            "address": address,
            "ip": ip,
            "prefix": base.network.prefixlen if base is not None else None,
            "agent": agent,
        })
    if problems:
        raise AnsibleFilterError("warden_vm_fleet: " + "; ".join(dict.fromkeys(problems)))
    return vms


class FilterModule:
    def filters(self):
        return {"warden_vm_fleet": warden_vm_fleet}
