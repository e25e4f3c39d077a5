"""`python bench/bench.py --only roundtrip` (make bench-roundtrip): one round trip per host.

In one run, on simulated hosts (release binaries), before (the roles one task per step:
playbooks/agent_by_role.yml, bench/by_role/fleet.yml) against after (agent.yml, fleet.yml):
  1. SSH sessions per converged agent, counted by a loopback sshd of the bench's own, and the
     wall time of each re-run;
  2. converged fleet.yml per host on the local connection at BENCH_RT_SIZES hosts (default
     10,50,200; wall and controller CPU, the before side up to BENCH_RT_BEFORE_MAX hosts), and
     forks × strategy at BENCH_RT_GRID_SIZE hosts (default 50);
  3. a converged SSH fleet of BENCH_RT_SSH_SIZE hosts (default 20) behind the loopback sshd:
     sessions and wall time per host.
Writes bench/results/roundtrip.json and prints a summary.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import yaml
from harness import REPO, SIM, Sandbox, Sshd

SIZES = [int(n) for n in os.environ.get("BENCH_RT_SIZES", "10,50,200").split(",")]
BEFORE_MAX = int(os.environ.get("BENCH_RT_BEFORE_MAX", "50"))
GRID_SIZE = int(os.environ.get("BENCH_RT_GRID_SIZE", "50"))
SSH_SIZE = int(os.environ.get("BENCH_RT_SSH_SIZE", "20"))
RUNS = int(os.environ.get("BENCH_RT_RUNS", "2"))
AFTER = "playbooks/fleet.yml"
BEFORE = "bench/by_role/fleet.yml"


def log(msg):
    print(f"[bench roundtrip] {msg}", file=sys.stderr, flush=True)


def timed(env, playbook, *args):
    """(wall ms, CPU ms of ansible-playbook and everything it ran) of one converged run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = harness.run_playbook(env, playbook, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def per_host(env, playbook, size, args, runs=RUNS):
    walls, cpus = zip(*[timed(env, playbook, *args) for _ in range(runs)])
    wall = harness.summary(list(walls))
    return {"wall_ms": wall, "per_host_ms": round(wall["median_ms"] / size, 1),
            "cpu_per_host_ms": round(sorted(cpus)[len(cpus) // 2] / size, 1)}


def fleet_box(path, size, name):
    sys.path.insert(0, str(REPO / "tests"))
    from fleet_inventory import inventory

    box_dir = path / name
    box_dir.mkdir()
    box_dir.chmod(0o755)
    box = Sandbox(box_dir / "s", [f"sim{n:02d}" for n in range(1, size + 1)])
    inv = box_dir / "fleet.yml"
    inv.write_text(yaml.safe_dump(inventory(size, literal=str(box.path)), sort_keys=False))
    return box, inv


def drop(box):
    subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], capture_output=True, check=False)


def sessions_per_agent(path, ws):
    log("1. SSH sessions per converged agent")
    box = Sandbox(path / "one", ["sim1"])
    sshd_dir = path / "sshd1"
    sshd_dir.mkdir()
    sshd_dir.chmod(0o755)
    sshd = Sshd(sshd_dir)
    try:
        env = ws.env(box)
        extra = ("-e", "agent_name=mevy", "-e", sshd.extra_vars(warden_binary_dir=str(path / "cache1")))
        harness.run_playbook(env, "playbooks/agent.yml", *extra, expect_changed=None)
        out = {}
        for name, playbook in (("before", "playbooks/agent_by_role.yml"), ("after", "playbooks/agent.yml")):
            harness.run_playbook(env, playbook, *extra)
            start = sshd.sessions()
            wall = harness.run_playbook(env, playbook, *extra)
            out[name] = {"playbook": playbook, "sessions": sshd.sessions() - start, "wall_ms": round(wall, 1)}
        return out
    finally:
        sshd.stop()
        drop(box)


def local_fleets(path, ws):
    log("2. converged fleets, local connection")
    out, grid = {}, {}
    for size in SIZES:
        log(f"  {size} hosts")
        box, inv = fleet_box(path, size, f"fleet{size}")
        try:
            env = ws.env(box)
            args = ("-i", inv, "-e", "warden_fleet_group=fleet")
            harness.run_playbook(env, AFTER, *args, expect_changed=None)
            harness.run_playbook(env, AFTER, *args)
            out[str(size)] = {"after": per_host(env, AFTER, size, args)}
            if size <= BEFORE_MAX:
                harness.run_playbook(env, BEFORE, *args)
                out[str(size)]["before"] = per_host(env, BEFORE, size, args)
            if size == GRID_SIZE:
                for forks in (5, 10, 20):
                    for strategy in ("linear", "free"):
                        log(f"  {size} hosts, forks {forks}, {strategy}")
                        genv = {**env, "ANSIBLE_FORKS": str(forks), "ANSIBLE_STRATEGY": strategy}
                        grid[f"{forks}/{strategy}"] = per_host(genv, AFTER, size, args, runs=1)["per_host_ms"]
        finally:
            drop(box)
    return out, grid


def ssh_fleet(path, ws):
    log(f"3. converged SSH fleet of {SSH_SIZE} hosts")
    box, inv = fleet_box(path, SSH_SIZE, "sshfleet")
    sshd_dir = path / "sshd2"
    sshd_dir.mkdir()
    sshd_dir.chmod(0o755)
    sshd = Sshd(sshd_dir)
    try:
        env = ws.env(box)
        args = ("-i", inv, "-e", "warden_fleet_group=fleet", "-e", sshd.extra_vars(warden_binary_dir=str(path / "cache2")))
        harness.run_playbook(env, AFTER, *args, expect_changed=None)
        out = {}
        for name, playbook in (("before", BEFORE), ("after", AFTER)):
            harness.run_playbook(env, playbook, *args)
            start = sshd.sessions()
            wall = harness.run_playbook(env, playbook, *args)
            out[name] = {"sessions_per_host": round((sshd.sessions() - start) / SSH_SIZE, 2),
                         "per_host_ms": round(wall / SSH_SIZE, 1), "wall_ms": round(wall, 1)}
        return out
    finally:
        sshd.stop()
        drop(box)


def main(machine, workspace):
    path = Path(tempfile.mkdtemp(prefix="wbrt", dir="/tmp"))
    path.chmod(0o755)
    ws = workspace(path / "ws")
    results = {**machine(), "settings": {"sizes": SIZES, "before_max": BEFORE_MAX, "grid_size": GRID_SIZE,
                                         "ssh_size": SSH_SIZE, "runs": RUNS, "forks": os.environ.get("ANSIBLE_FORKS", "10 (ansible.cfg)")}}
    started = time.time()
    try:
        results["sessions"] = sessions_per_agent(path, ws)
        results["ssh_fleet"] = ssh_fleet(path, ws)
        results["local"], results["grid"] = local_fleets(path, ws)
    finally:
        results["seconds"] = round(time.time() - started)
        out_dir = REPO / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        (out_dir / "roundtrip.json").write_text(json.dumps(results, indent=2) + "\n")
        shutil.rmtree(path, ignore_errors=True)
    print(json.dumps(results, indent=2))
