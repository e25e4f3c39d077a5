"""make bench: what a converged (no-op) run costs, measured on the simulated host.

Prints, and writes to bench/results/latest.json:
  * each module alone (args file in, JSON out, no Ansible): median and spread of a no-op
    run, and the host tool calls it makes; warden_probe (a module that does nothing) is
    the floor a binary module cannot go below;
  * an idempotent re-run of playbooks/agent.yml through ansible-playbook;
  * the size of every module binary.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from conftest import BIN, SIM, Sandbox  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "30"))
PLAYBOOK_RUNS = int(os.environ.get("BENCH_PLAYBOOK_RUNS", "5"))


def timed(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p10_ms": round(times[len(times) // 10], 2),
        "p90_ms": round(times[(len(times) * 9) // 10 - 1 if len(times) >= 10 else -1], 2),
        "runs": runs,
    }


# Each module's args are told apart by a parameter only it has.
SIGNATURES = {
    "warden_rcd": "tmux_path",
    "warden_bridge_alias": "addresses",
    "warden_pf_net": "subnets",
    "bastille_jail": "bastille_prefix",
    "warden_db": "revoke_public",
}


def module_args(box):
    """Every warden module's args as the playbook sends them, captured from a real run."""
    rc, out, _ = box.playbook(
        "playbooks/agent.yml", "-e", "agent_name=mevy", "-vvv", env={"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    )
    assert rc == 0, out
    found = {}
    decoder = json.JSONDecoder()
    at = 0
    while (at := out.find('"invocation"', at)) != -1:
        args = decoder.raw_decode(out[out.index("{", at + 12):])[0]["module_args"]
        for module, key in SIGNATURES.items():
            if key in args:
                found[module] = args
        at += 12
    assert set(found) == set(SIGNATURES), found.keys()
    # Secrets are masked in the output: put them back from where the sandbox keeps them.
    pg = dict(line.split("=", 1) for line in (box.path / "pg" / "env").read_text().split())
    found["warden_db"]["login_password"] = pg["PGPASSWORD"]
    found["warden_db"]["password"] = (box.path / "secrets" / "sim1" / "mevy-db").read_text().strip()
    return found


def run_module(binary, args_path, env):
    out = subprocess.run([binary, args_path], env=env, capture_output=True, text=True)
    result = json.loads(out.stdout)
    assert result.get("failed") is False and result.get("changed") is False, result
    return result


def main():
    path = Path(tempfile.mkdtemp(prefix="wbench", dir="/tmp"))
    path.chmod(0o755)  # the sandbox's PostgreSQL runs as another user when run as root
    box = Sandbox(path / "s", ["sim1"])
    try:
        all_args = module_args(box)
        env = box.env()
        env["PATH"] = f"{box.path / 'bin'}:{env['PATH']}"
        env["WARDEN_SIM_ROOT"] = str(box.root())
        calls_log = box.root() / "sim" / "calls.log"
        alone = {}
        for module, args in sorted(all_args.items()):
            args_file = path / f"{module}.args"
            args_file.write_text(json.dumps(args))
            binary = REPO / "library" / module
            calls_log.write_text("")
            run_module(binary, args_file, env)
            calls = len(calls_log.read_text().splitlines())
            alone[module] = {**timed(lambda: run_module(binary, args_file, env), RUNS), "tool_calls_per_run": calls}
        # The jail of the closing note: 3 packages, 2 services.
        jail_args = dict(all_args["bastille_jail"], name="mevybench", ip="10.0.1.9/24",
                         packages=["nginx", "redis", "curl"], services=["nginx", "redis"])
        args_file = path / "jail3x2.args"
        args_file.write_text(json.dumps(jail_args))
        subprocess.run([REPO / "library" / "bastille_jail", args_file], env=env, capture_output=True, check=True)
        calls_log.write_text("")
        run_module(REPO / "library" / "bastille_jail", args_file, env)
        calls = len(calls_log.read_text().splitlines())
        alone["bastille_jail (3 packages, 2 services)"] = {
            **timed(lambda: run_module(REPO / "library" / "bastille_jail", args_file, env), RUNS),
            "tool_calls_per_run": calls,
        }
        probe_args = path / "probe.args"
        probe_args.write_text(json.dumps({"name": "noop"}))
        probe = REPO / "target" / "release" / "warden_probe"
        alone["warden_probe (floor)"] = timed(lambda: run_module(probe, probe_args, env), RUNS)

        results = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {platform.system()} {os.cpu_count()} cpus",
            "module_alone": alone,
            "agent_yml_rerun": timed(
                lambda: box.playbook("playbooks/agent.yml", "-e", "agent_name=mevy")[0] == 0 or sys.exit("re-run failed"),
                PLAYBOOK_RUNS,
            ),
            "sizes_bytes": {m.name: m.stat().st_size for m in sorted((REPO / "library").iterdir()) if m.suffix == ""},
        }
    finally:
        subprocess.run([REPO / "tests" / "sandbox.sh", box.path, SIM], capture_output=True)

    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")

    floor = results["module_alone"]["warden_probe (floor)"]["median_ms"]
    print(f"warden bench, {results['date']}, {results['machine']}")
    print(f"{'module alone (no-op)':40} {'median':>9} {'p10':>8} {'p90':>8} {'vs floor':>9} {'tool calls':>11}")
    for name, r in results["module_alone"].items():
        calls = r.get("tool_calls_per_run", "")
        print(f"{name:40} {r['median_ms']:7.2f}ms {r['p10_ms']:6.2f}ms {r['p90_ms']:6.2f}ms {r['median_ms'] / floor:8.1f}x {calls:>11}")
    r = results["agent_yml_rerun"]
    print(f"{'agent.yml idempotent re-run':40} {r['median_ms']:7.0f}ms {r['p10_ms']:6.0f}ms {r['p90_ms']:6.0f}ms")
    for name, size in results["sizes_bytes"].items():
        print(f"{'size ' + name:40} {size:>9} bytes ({size / 1048576:.2f} MiB)")
    print(f"written to {out_dir / 'latest.json'}")


if __name__ == "__main__":
    main()
