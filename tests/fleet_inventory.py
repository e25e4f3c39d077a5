"""Writes an inventory of N simulated fleet VMs, one agent each: fleet_inventory.py N FILE.

Every VM is like the sandbox host of inventory/sandbox.yml (its variables are copied from
there), runs one agent `agentNN` on its own warden0 with the deployment guide's default
10.0.0 /24, and belongs to the group `fleet`.
"""

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def inventory(count):
    sandbox = yaml.safe_load((REPO / "inventory" / "sandbox.yml").read_text())
    shared = dict(sandbox["all"]["children"]["warden"]["vars"])
    template = dict(shared.pop("warden_agents")["mevy"])
    hosts = {}
    for n in range(1, count + 1):
        agent = dict(template, subnet_base="10.0.0", assistant_name=f"Agent {n}")
        hosts[f"sim{n:02d}"] = {"warden_agents": {f"agent{n:02d}": agent}}
    return {"all": {"children": {"fleet": {"hosts": hosts, "vars": shared}}}}


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(yaml.safe_dump(inventory(int(sys.argv[1])), sort_keys=False))
