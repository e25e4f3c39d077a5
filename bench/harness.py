"""Building blocks of `make bench`: sandboxes, generated playbooks, timed runs.

A "step" is one of agent.yml's steps (network, pf, jails, db, env, service) done one of four
ways: warden's module task with literal args (`module`: the module's own cost through Ansible),
its role's task as agent.yml runs it (`ours`: Jinja included), the stock-module tasks of
bench/stock doing the same check (`stock`), or a floor (a trivial binary module, a converged
`lineinfile`). Its
per-task cost through ansible-playbook is measured as (T(K copies) - T(0 copies)) / K on an
already converged host, so the play's own start-up and the derivation tasks drop out.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from conftest import BIN, SIM, Sandbox, Sshd  # noqa: F401

STEPS = ["network", "pf", "jails", "db", "env", "service"]
MODULE_OF_STEP = {
    "network": "warden_bridge_alias",
    "pf": "warden_pf_net",
    "jails": "bastille_jail",
    "db": "warden_db",
    "env": "warden_env",
    "service": "warden_rcd",
}


def platform_name():
    system, machine = os.uname().sysname.lower(), os.uname().machine
    return f"{system}_{machine}"


def summary(values):
    """Median and spread of a list of numbers (milliseconds)."""
    values = sorted(values)
    return {
        "median_ms": round(statistics.median(values), 2),
        "min_ms": round(values[0], 2),
        "max_ms": round(values[-1], 2),
        "runs": len(values),
    }


def role_defaults():
    """Every step role's defaults, for plays that import a role's tasks without the role."""
    merged = {}
    for step in STEPS:
        path = REPO / "roles" / f"warden_{step}" / "defaults" / "main.yml"
        if path.exists():
            merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


class Workspace:
    """A temporary directory with the probe module (warden_probe: does nothing, prints a fixed
    result) next to the real ones, and the environment that makes Ansible see both."""

    def __init__(self, path: Path):
        self.path = path
        self.library = path / "library"
        self.actions = path / "action_plugins"
        self.library.mkdir(parents=True)
        self.actions.mkdir()
        probe = REPO / "target" / "release" / "warden_probe"
        shutil.copy(probe, self.library / "warden_probe")
        os.symlink("warden_probe", self.library / f"warden_probe_{platform_name()}")
        (self.library / "warden_probe.yml").write_text(
            "---\nDOCUMENTATION:\n  module: warden_probe\n  short_description: The trivial binary module (benchmark floor)\n"
            "  description: [Does nothing and prints a fixed result.]\n  options:\n    name: {description: Any name., type: str, required: true}\n"
        )
        shutil.copy(REPO / "action_plugins" / "warden_rcd.py", self.actions / "warden_probe.py")
        self.sizes = {m: (REPO / "library" / m).stat().st_size for m in MODULE_OF_STEP.values()}
        self.sizes["warden_probe"] = probe.stat().st_size
        self.defaults = role_defaults()
        self.module_args = {}  # each module's literal args, as agent.yml sends them (set by the bench)
        sandbox_vars = yaml.safe_load((REPO / "inventory" / "sandbox.yml").read_text())["all"]["children"]["warden"]["vars"]
        # Role defaults the inventory does not set: the inventory must keep winning.
        self.step_vars = {k: v for k, v in self.defaults.items() if k not in sandbox_vars}

    def env(self, box: Sandbox, **more):
        env = box.env()
        env.update(
            ANSIBLE_LIBRARY=f"{self.library}:{REPO / 'library'}",
            ANSIBLE_ACTION_PLUGINS=f"{REPO / 'action_plugins'}:{self.actions}",
            ANSIBLE_PIPELINING="True",  # the Python modules' best case; binary modules never pipeline
            ANSIBLE_DEPRECATION_WARNINGS="False",
        )
        env.update({k: str(v) for k, v in more.items()})
        return env

    def write_play(self, name, side, step, copies, hosts="sim1"):
        """A playbook running `copies` copies of a step the given way; returns its path."""
        play = {
            "name": f"bench {side} {step} x{copies}",
            "hosts": hosts,
            "gather_facts": False,
            "environment": "{{ warden_environment }}",
            "vars": {"agent_name": "mevy"},
        }
        tasks = []
        if side == "module":
            module = MODULE_OF_STEP[step]
            tasks = [{"name": f"{module} {i}", module: self.module_args[module], "no_log": module in ("warden_db", "warden_env")}
                     for i in range(copies)]
        elif side == "ours":
            play["vars"].update(self.step_vars)
            play["roles"] = ["warden_agent"]
            task_file = REPO / "roles" / f"warden_{step}" / "tasks" / "main.yml"
            tasks = [{"name": f"copy {i}", "ansible.builtin.import_tasks": str(task_file)} for i in range(copies)]
        elif side == "stock":
            play["vars_files"] = [str(REPO / "bench" / "stock" / "vars.yml")]
            task_file = REPO / "bench" / "stock" / "tasks" / f"{step}.yml"
            tasks = [{"name": f"copy {i}", "ansible.builtin.import_tasks": str(task_file)} for i in range(copies)]
            play["handlers"] = [{"name": "handlers", "ansible.builtin.import_tasks": str(REPO / "bench" / "stock" / "tasks" / "handlers.yml")}]
        elif side == "binary floor":
            tasks = [{"name": f"probe {i}", "warden_probe": {"name": "noop"}} for i in range(copies)]
        elif side == "python floor":
            tasks = [
                {
                    "name": f"lineinfile {i}",
                    "ansible.builtin.lineinfile": {"path": "{{ warden_root }}/etc/rc.conf", "line": 'sshd_enable="YES"'},
                }
                for i in range(copies)
            ]
        else:
            raise ValueError(side)
        play["tasks"] = tasks
        path = self.path / f"{name}.yml"
        path.write_text(yaml.safe_dump([play], sort_keys=False))
        return path


def run_playbook(env, playbook, *args, expect_changed=0):
    """Runs ansible-playbook; returns its wall time in ms. A converged run must change nothing."""
    start = time.perf_counter()
    done = subprocess.run([BIN / "ansible-playbook", str(playbook), *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{playbook} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    if expect_changed is not None:
        changed = [int(x.split("=")[1]) for x in done.stdout.split() if x.startswith("changed=")]
        if sum(changed) != expect_changed:
            raise RuntimeError(f"{playbook}: expected changed={expect_changed}, got {changed}:\n{done.stdout[-4000:]}")
    return elapsed


_baselines = {}


def per_task(env, workspace, side, step, copies, runs, extra=()):
    """Per-task (per-step) cost of `step` done the `side` way: ms, median and spread. The
    baseline (the same play with no copies) is measured once per way and connection."""
    kind = side if side in ("ours", "stock") else "floor"
    key = (kind, env["WARDEN_SANDBOX"], tuple(map(str, extra)))
    if key not in _baselines:
        base_play = workspace.write_play(f"{kind}-base", side, step, 0)
        run_playbook(env, base_play, *extra)
        _baselines[key] = statistics.median([run_playbook(env, base_play, *extra) for _ in range(runs)])
    play = workspace.write_play(f"{side}-{step}-{copies}".replace(" ", "_"), side, step, copies)
    run_playbook(env, play, *extra)  # warm caches (and converge anything a first call would do)
    full = [run_playbook(env, play, *extra) for _ in range(runs)]
    return {**summary([(t - _baselines[key]) / copies for t in full]), "baseline_ms": round(_baselines[key], 1)}


def ssh_exec_ms(sshd, runs=20):
    """One multiplexed `ssh host true`: what every remote command costs on this machine
    (the target user's shell start-up files included)."""
    control = sshd.path / "bench-cp"
    cmd = ["ssh", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", f"ControlPath={control}",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=quiet",
           "-i", str(sshd.key), "-p", str(sshd.port), f"{sshd.user}@127.0.0.1", "true"]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    subprocess.run([*cmd[:1], "-O", "exit", *cmd[1:-1]], capture_output=True, stdin=subprocess.DEVNULL, check=False)
    return summary(times)


def whole_run(env, playbook, runs, *args):
    run_playbook(env, playbook, *args)
    return summary([run_playbook(env, playbook, *args) for _ in range(runs)])


def module_alone(binary, args_path, env, runs, calls_log):
    """A module run by itself (args file in, JSON out): ms and host tool calls per run."""

    def once():
        out = subprocess.run([binary, args_path], env=env, capture_output=True, text=True, check=False)
        result = json.loads(out.stdout)
        if result.get("failed") or result.get("changed"):
            raise RuntimeError(f"{binary} did not converge: {result}")

    calls_log.write_text("")
    once()
    calls = len(calls_log.read_text().splitlines())
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        once()
        times.append((time.perf_counter() - start) * 1000)
    return {**summary(times), "tool_calls_per_run": calls}
