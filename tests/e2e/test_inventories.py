"""The shipped example inventories parse, and the molecule fleet inventory matches its generator."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import BIN, REPO

sys.path.insert(0, str(REPO / "tests"))
from fleet_inventory import inventory


@pytest.mark.parametrize(
    "name, group, agents",
    [
        ("single-host.yml", "warden", {"clawdie"}),
        ("multi-agent.yml", "warden", {"clawdie", "mevy"}),
        ("bhyve-fleet.yml", "fleet", {"ana", "bo", "cy"}),
    ],
)
def test_examples_parse(name, group, agents):
    out = subprocess.run(
        [BIN / "ansible-inventory", "-i", REPO / "inventory" / name, "--list"], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)
    hosts = data[group]["hosts"]
    found = set()
    for host in hosts:
        found |= set(data["_meta"]["hostvars"][host]["warden_agents"])
    assert found == agents


def test_molecule_fleet_inventory_is_generated():
    committed = yaml.safe_load((REPO / "tests" / "fleet-molecule.yml").read_text())
    assert committed == inventory(3), "regenerate with: python3 tests/fleet_inventory.py 3 tests/fleet-molecule.yml"
