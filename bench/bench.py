"""make bench: warden's modules against the stock-module way and Ansible's own floor.

In one run, on simulated hosts (release binaries):
  1. each step of agent.yml, converged, through ansible-playbook: warden's module task with
     literal args (through the warden_binary action plugin, and on the plain library/ path)
     and its role's task as agent.yml runs it, next to the stock tasks doing the same check
     (bench/stock), and against the floors: a trivial binary module (warden_probe) on each
     path and a converged ansible.builtin.lineinfile;
  2. each module alone (args file in, JSON out): time and host tool calls per run;
  3. a whole idempotent re-run of playbooks/agent.yml against bench/stock/agent.yml;
  4. fleet scaling: idempotent re-runs of playbooks/fleet.yml over 1, 10 and 50 hosts;
  5. the same over SSH (a loopback sshd of the bench's own): per step, the binary upload
     a cold cache pays, and whole runs, against pipelined Python;
  6. binary sizes.
Part 3 also times the converged re-run without the jails step (`--skip-tags jails` on both
sides), where the agent's layout is most of warden's own controller work.
Writes bench/results/latest.json, latest.md and bench.png; prints the tables and where each
target stands. Tunables (environment): BENCH_RUNS, BENCH_COPIES, BENCH_ALONE_RUNS,
BENCH_SSH_RUNS, BENCH_SSH_COPIES, BENCH_FLEET_SIZES, BENCH_FLEET_RUNS.

`python bench/bench.py --only norejails` runs just that re-run without jails against the
stock reference (a few minutes; BENCH_RUNS runs each, interleaved) and writes
bench/results/norejails.json. `python bench/bench.py --only roundtrip` measures one round
trip per host (bench/roundtrip.py: SSH sessions per agent, fleets of 10, 50 and 200 hosts,
an SSH fleet) and writes bench/results/roundtrip.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import report
from harness import MODULE_OF_STEP, REPO, SIM, STEPS, Sandbox, Sshd, Workspace

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
COPIES = int(os.environ.get("BENCH_COPIES", "10"))
ALONE_RUNS = int(os.environ.get("BENCH_ALONE_RUNS", "30"))
SSH_RUNS = int(os.environ.get("BENCH_SSH_RUNS", "3"))
SSH_COPIES = int(os.environ.get("BENCH_SSH_COPIES", "5"))
FLEET_SIZES = [int(n) for n in os.environ.get("BENCH_FLEET_SIZES", "1,10,50").split(",")]
FLEET_RUNS = int(os.environ.get("BENCH_FLEET_RUNS", "2"))

# Each module's args are told apart by a parameter only it has.
SIGNATURES = {
    "warden_rcd": "tmux_path",
    "warden_bridge_alias": "addresses",
    "warden_pf_net": "subnets",
    "bastille_jail": "bastille_prefix",
    "warden_db": "revoke_public",
    "warden_env": "secret_values",
}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def converge(env, playbook, *args):
    harness.run_playbook(env, playbook, *args, expect_changed=None)
    harness.run_playbook(env, playbook, *args, expect_changed=0)


def captured_args(box, env):
    """Every module's args as agent.yml sends them, from a verbose converged run."""
    done = subprocess.run(
        [harness.BIN / "ansible-playbook", "playbooks/agent.yml", "-e", "agent_name=mevy", "-vvv"],
        cwd=REPO, env={**env, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}, capture_output=True, text=True, check=True,
    )
    out, found, decoder, at = done.stdout, {}, json.JSONDecoder(), 0
    while (at := out.find('"invocation"', at)) != -1:
        args = decoder.raw_decode(out[out.index("{", at + 12):])[0]["module_args"]
        for module, key in SIGNATURES.items():
            if key in args:
                found[module] = args
        at += 12
    missing = set(SIGNATURES) - set(found)
    if missing:
        raise RuntimeError(f"no invocation captured for {missing}")
    # Secrets are masked in the output: put them back from where the sandbox keeps them.
    pg = dict(line.split("=", 1) for line in (box.path / "pg" / "env").read_text().split())
    password = (box.path / "secrets" / "sim1" / "mevy-db").read_text().strip()
    found["warden_db"]["login_password"] = pg["PGPASSWORD"]
    found["warden_db"]["password"] = password
    found["warden_env"]["secret_values"] = {"WARDEN_DB_PASSWORD": password}
    return found


def bench_modules_alone(box, env, path, all_args):
    """2: each module by itself on the converged host."""
    tool_env = dict(env, PATH=f"{box.path / 'bin'}:{env['PATH']}", WARDEN_SIM_ROOT=str(box.root()))
    calls_log = box.root() / "sim" / "calls.log"
    alone = {}
    for module, args in sorted(all_args.items()):
        args_file = path / f"{module}.args"
        args_file.write_text(json.dumps(args))
        alone[module] = harness.module_alone(REPO / "library" / module, args_file, tool_env, ALONE_RUNS, calls_log)
    jail_args = dict(all_args["bastille_jail"], name="mevybench", ip="10.0.1.9/24",
                     packages=["nginx", "redis", "curl"], services=["nginx", "redis"])
    args_file = path / "jail3x2.args"
    args_file.write_text(json.dumps(jail_args))
    subprocess.run([REPO / "library" / "bastille_jail", args_file], env=tool_env, capture_output=True, check=True)
    alone["bastille_jail (3 packages, 2 services)"] = harness.module_alone(
        REPO / "library" / "bastille_jail", args_file, tool_env, ALONE_RUNS, calls_log)
    probe_args = path / "probe.args"
    probe_args.write_text(json.dumps({"name": "noop"}))
    alone["warden_probe (floor)"] = harness.module_alone(REPO / "target" / "release" / "warden_probe", probe_args, tool_env, ALONE_RUNS, calls_log)
    # The extra jail must not count in the whole-run figures.
    absent = dict(jail_args, state="absent")
    args_file.write_text(json.dumps(absent))
    subprocess.run([REPO / "library" / "bastille_jail", args_file], env=tool_env, capture_output=True, check=True)
    return alone


def bench_steps(ws, ours_env, stock_env, runs, copies, ours_extra=(), stock_extra=(), plain_extra=()):
    """1 (and 5 over SSH): per-step cost of each way, and the floors."""
    steps = {}
    for step in STEPS:
        log(f"  step {step}")
        steps[step] = {
            "module": harness.per_task(ours_env, ws, "module", step, copies, runs, ours_extra),
            "module_plain": harness.per_task(ours_env, ws, "module", step, copies, runs, (*ours_extra, *plain_extra)),
            "ours": harness.per_task(ours_env, ws, "ours", step, copies, runs, ours_extra),
            "stock": harness.per_task(stock_env, ws, "stock", step, copies, runs, stock_extra),
        }
    log("  floors")
    floors = {
        "binary": harness.per_task(ours_env, ws, "binary floor", "-", copies, runs, ours_extra),
        "binary_plain": harness.per_task(ours_env, ws, "binary floor", "-", copies, runs, (*ours_extra, *plain_extra)),
        "python": harness.per_task(stock_env, ws, "python floor", "-", copies, runs, stock_extra),
    }
    return {"steps": steps, "floors": floors, "copies": copies}


def bench_cold_upload(ws, env, extra, cache, runs):
    """5: what the first task on a host pays to upload each module's binary."""
    out = {}
    for step, module in MODULE_OF_STEP.items():
        play = ws.write_play(f"cold-{step}", "ours", step, 1)
        base = ws.write_play(f"cold-{step}-0", "ours", step, 0)
        harness.run_playbook(env, play, *extra)
        cold, warm, bare = [], [], []
        for _ in range(runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(harness.run_playbook(env, play, *extra))
            warm.append(harness.run_playbook(env, play, *extra))
            bare.append(harness.run_playbook(env, base, *extra))
        med = harness.summary
        out[module] = {
            "size_bytes": ws.sizes[module],
            "first_task_ms": round(med(cold)["median_ms"] - med(bare)["median_ms"], 1),
            "cached_task_ms": round(med(warm)["median_ms"] - med(bare)["median_ms"], 1),
        }
        out[module]["upload_ms"] = round(out[module]["first_task_ms"] - out[module]["cached_task_ms"], 1)
    return out


def bench_fleet(path, ws):
    """4: idempotent fleet.yml re-runs over growing fleets."""
    sys.path.insert(0, str(REPO / "tests"))
    from fleet_inventory import inventory

    out = {}
    for size in FLEET_SIZES:
        log(f"  fleet of {size}")
        hosts = [f"sim{n:02d}" for n in range(1, size + 1)]
        box_dir = path / f"fleet{size}"
        box_dir.mkdir()
        box_dir.chmod(0o755)
        box = Sandbox(box_dir / "s", hosts)
        try:
            inv = box_dir / "fleet.yml"
            inv.write_text(yaml.safe_dump(inventory(size), sort_keys=False))
            env = ws.env(box)
            args = ("-i", inv, "-e", "warden_fleet_group=fleet")
            harness.run_playbook(env, "playbooks/fleet.yml", *args, expect_changed=None)
            times = [harness.run_playbook(env, "playbooks/fleet.yml", *args) for _ in range(FLEET_RUNS)]
            s = harness.summary(times)
            out[str(size)] = {**s, "per_host_ms": round(s["median_ms"] / size, 1)}
        finally:
            subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], capture_output=True, check=False)
    return out


NO_JAILS = ("-e", "agent_name=mevy", "--skip-tags", "jails")


def bench_no_jails(ours_env, stock_env, runs):
    """3: the converged re-run without the jails step, warden and stock, interleaved so load
    from elsewhere on the machine hits both alike."""
    harness.run_playbook(ours_env, "playbooks/agent.yml", *NO_JAILS)
    harness.run_playbook(stock_env, "bench/stock/agent.yml", *NO_JAILS)
    ours, stock = [], []
    for _ in range(runs):
        ours.append(harness.run_playbook(ours_env, "playbooks/agent.yml", *NO_JAILS))
        stock.append(harness.run_playbook(stock_env, "bench/stock/agent.yml", *NO_JAILS))
    return {"agent_yml_no_jails": harness.summary(ours), "stock_no_jails": harness.summary(stock)}


def machine():
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "ansible_core": subprocess.run([harness.BIN / "ansible", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0],
    }


def only_no_jails():
    """`--only norejails`: the converged re-run without jails against the stock reference."""
    path = Path(tempfile.mkdtemp(prefix="wbench", dir="/tmp"))
    path.chmod(0o755)
    ws = Workspace(path / "ws")
    results = {**machine(), "settings": {"runs": RUNS}}
    ours_box = Sandbox(path / "o", ["sim1"])
    stock_box = Sandbox(path / "s", ["sim1"])
    try:
        ours_env, stock_env = ws.env(ours_box), ws.env(stock_box)
        log("converging the hosts (agent.yml, bench/stock/agent.yml)")
        converge(ours_env, "playbooks/agent.yml", "-e", "agent_name=mevy")
        converge(stock_env, "bench/stock/agent.yml", "-e", "agent_name=mevy")
        log(f"re-runs without jails, {RUNS} each")
        results["local"] = {"whole": bench_no_jails(ours_env, stock_env, RUNS)}
    finally:
        for box in (ours_box, stock_box):
            subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], capture_output=True, check=False)
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "norejails.json").write_text(json.dumps(results, indent=2) + "\n")
    results["targets"] = report.targets(results)
    (out_dir / "norejails.json").write_text(json.dumps(results, indent=2) + "\n")
    print(report.no_jails_line(results["local"]["whole"]))
    for t in results["targets"]:
        print(f"target: {t['target']}: {t['measured']}× ({t['bound']}): {'met' if t['met'] else 'NOT met'}")
    shutil.rmtree(path, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["norejails", "roundtrip"], help="run one part of the benchmark only")
    only = parser.parse_args().only
    if only == "norejails":
        only_no_jails()
        return
    if only == "roundtrip":
        import roundtrip

        roundtrip.main(machine, Workspace)
        return
    path = Path(tempfile.mkdtemp(prefix="wbench", dir="/tmp"))
    path.chmod(0o755)  # the sandboxes' PostgreSQL runs as another user when run as root
    ws = Workspace(path / "ws")
    forks = subprocess.run([harness.BIN / "ansible-config", "dump", "--only-changed"], cwd=REPO, capture_output=True, text=True, check=False).stdout
    results = {
        **machine(),
        "settings": {"runs": RUNS, "copies": COPIES, "ssh_runs": SSH_RUNS, "ssh_copies": SSH_COPIES,
                     "forks": next((line.split("=")[-1].strip() for line in forks.splitlines() if line.startswith("DEFAULT_FORKS")), "5")},
    }
    ours_box = Sandbox(path / "o", ["sim1"])
    stock_box = Sandbox(path / "s", ["sim1"])
    sshd = None
    try:
        ours_env, stock_env = ws.env(ours_box), ws.env(stock_box)
        log("converging the hosts (agent.yml, bench/stock/agent.yml)")
        converge(ours_env, "playbooks/agent.yml", "-e", "agent_name=mevy")
        converge(stock_env, "bench/stock/agent.yml", "-e", "agent_name=mevy")
        ws.module_args = captured_args(ours_box, ours_env)
        plain = ("-e", "warden_binary_cache=false")

        log("1. per step through ansible-playbook, local connection")
        results["local"] = bench_steps(ws, ours_env, stock_env, RUNS, COPIES, plain_extra=plain)

        log("2. modules alone")
        results["module_alone"] = bench_modules_alone(ours_box, ours_env, path, ws.module_args)

        log("3. whole idempotent re-runs, local")
        results["local"]["whole"] = {
            "agent_yml": harness.whole_run(ours_env, "playbooks/agent.yml", RUNS, "-e", "agent_name=mevy"),
            "agent_yml_plain": harness.whole_run(ours_env, "playbooks/agent.yml", RUNS, "-e", "agent_name=mevy", *plain),
            "stock": harness.whole_run(stock_env, "bench/stock/agent.yml", RUNS, "-e", "agent_name=mevy"),
            **bench_no_jails(ours_env, stock_env, RUNS),
        }

        log("5. over SSH (loopback sshd)")
        sshd_dir = path / "sshd"
        sshd_dir.mkdir()
        sshd_dir.chmod(0o755)
        sshd = Sshd(sshd_dir)
        cache = path / "cache"
        ours_ssh = ("-e", sshd.extra_vars(warden_binary_dir=str(cache)))
        stock_ssh = ("-e", sshd.extra_vars(ansible_python_interpreter=sys.executable))
        results["ssh"] = bench_steps(ws, ours_env, stock_env, SSH_RUNS, SSH_COPIES, ours_ssh, stock_ssh, plain)
        results["ssh"]["exec"] = harness.ssh_exec_ms(sshd)
        results["ssh"]["upload"] = bench_cold_upload(ws, ours_env, ours_ssh, cache, SSH_RUNS)
        results["ssh"]["whole"] = {
            "agent_yml": harness.whole_run(ours_env, "playbooks/agent.yml", SSH_RUNS, "-e", "agent_name=mevy", *ours_ssh),
            "stock": harness.whole_run(stock_env, "bench/stock/agent.yml", SSH_RUNS, "-e", "agent_name=mevy", *stock_ssh),
        }
    finally:
        if sshd:
            sshd.stop()
        for box in (ours_box, stock_box):
            subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], capture_output=True, check=False)

    log("4. fleet scaling")
    results["fleet"] = bench_fleet(path, ws)
    results["sizes_bytes"] = {m: ws.sizes[m] for m in MODULE_OF_STEP.values()}
    results["targets"] = report.targets(results)

    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results)
    (out_dir / "latest.md").write_text(markdown)
    plotted = report.plot(results, out_dir / "bench.png")
    print()
    print(markdown)
    print(f"written: {out_dir / 'latest.json'}, {out_dir / 'latest.md'}" + (f", {plotted}" if plotted else " (no plot: matplotlib missing)"))
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
