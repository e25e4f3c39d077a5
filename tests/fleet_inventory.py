"""Writes an inventory of N simulated fleet VMs, one agent each:
    fleet_inventory.py N FILE [--literal SANDBOX]

Every VM is like the sandbox host of inventory/sandbox.yml (its variables are copied from
there), runs one agent `agentNN` on its own warden0 with the deployment guide's default
10.0.0 /24, and belongs to the group `fleet`.

With --literal, the variables the sandbox inventory computes with lookups (`id -un`, `command
-v tmux`, the PostgreSQL server's port, password and CA from SANDBOX/pg/env, the sandbox's own
path, PATH) are written as the values they have now, per host, as a real fleet's inventory
holds its values: the benchmark's fleets use it, so that what they measure is warden's work
and not the sandbox's lookups (each one a process, at every use).
"""

import getpass
import grp
import os
import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def inventory(count, literal=None):
    sandbox = yaml.safe_load((REPO / "inventory" / "sandbox.yml").read_text())
    shared = dict(sandbox["all"]["children"]["warden"]["vars"])
    template = dict(shared.pop("warden_agents")["mevy"])
    hosts = {}
    for n in range(1, count + 1):
        name, agent_name = f"sim{n:02d}", f"agent{n:02d}"
        agent = dict(template, subnet_base="10.0.0", assistant_name=f"Agent {n}")
        host = {"warden_agents": {agent_name: agent}}
        if literal is not None:
            root = f"{literal}/hosts/{name}"
            agent.update(user=getpass.getuser(), workdir=f"{root}/home/{agent_name}")
            host.update(
                warden_root=root,
                warden_environment={"PATH": f"{literal}/bin:{os.environ['PATH']}", "WARDEN_SIM_ROOT": root},
                warden_tmux_socket_dir=f"{root}/var/run",
            )
        hosts[name] = host
    if literal is not None:
        pg = dict(line.split("=", 1) for line in (Path(literal) / "pg" / "env").read_text().split())
        for key in ("warden_root", "warden_environment", "warden_tmux_socket_dir"):
            shared.pop(key)
        shared.update(
            warden_sandbox=str(literal),
            warden_tmux_path=shutil.which("tmux"),
            warden_secrets_dir=f"{literal}/secrets",
            warden_db_login_port=int(pg["PGPORT"]),
            warden_db_login_password=pg["PGPASSWORD"],
            warden_db_ca_cert=pg["PGSSLROOTCERT"],
            warden_db_pg_hba_file=f"{literal}/pg/data/pg_hba.conf",
            warden_file_owner=getpass.getuser(),
            warden_file_group=grp.getgrgid(os.getgid()).gr_name,
        )
    return {"all": {"children": {"fleet": {"hosts": hosts, "vars": shared}}}}


if __name__ == "__main__":
    literal = None
    if len(sys.argv) == 5 and sys.argv[3] == "--literal":
        literal = str(Path(sys.argv[4]).resolve())
    elif len(sys.argv) != 3:
        sys.exit(__doc__)
    Path(sys.argv[2]).write_text(yaml.safe_dump(inventory(int(sys.argv[1]), literal), sort_keys=False))
