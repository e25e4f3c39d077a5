"""The benchmark's targets, its Markdown tables and its plot."""

from __future__ import annotations

from harness import MODULE_OF_STEP as MODULES
from harness import STEPS

MiB = 1024 * 1024


def med(entry):
    return entry["median_ms"]


def targets(r):
    """Every target of the benchmark: what was measured, the bound, whether it is met."""
    out = []

    def add(name, value, bound, ok, unit="x"):
        out.append({"target": name, "measured": round(value, 2), "bound": bound, "unit": unit, "met": bool(ok)})

    for where, label in (("local", "local"), ("ssh", "SSH")):
        if where not in r:
            continue
        steps, floors = r[where].get("steps", {}), r[where].get("floors", {})
        for step, s in steps.items():
            module = MODULES[step]
            add(f"{module} task vs trivial binary, action plugin, {label}", med(s["module"]) / med(floors["binary"]), "<= 1.3",
                med(s["module"]) <= 1.3 * med(floors["binary"]))
            add(f"{module} task vs trivial binary, plain path, {label}", med(s["module_plain"]) / med(floors["binary_plain"]), "<= 1.3",
                med(s["module_plain"]) <= 1.3 * med(floors["binary_plain"]))
            ratio = med(s["stock"]) / med(s["ours"])
            bound = 6 if where == "local" else 3
            add(f"{step} step: stock modules vs warden's role task, {label}", ratio, f">= {bound}", ratio >= bound)
            if where == "local":
                add(f"{step} step: Python equivalent vs action plugin path, local", ratio, ">= 15", ratio >= 15)
        whole = r[where].get("whole", {})
        if "stock" in whole and where == "local":
            ratio = med(whole["stock"]) / med(whole["agent_yml"])
            add("agent.yml idempotent re-run vs stock reference, local", ratio, ">= 4", ratio >= 4)
        if "stock_no_jails" in whole and where == "local":
            ratio = med(whole["stock_no_jails"]) / med(whole["agent_yml_no_jails"])
            add("agent.yml idempotent re-run without jails vs stock reference, local", ratio, ">= 6", ratio >= 6)
    fleet = r.get("fleet", {})
    if "10" in fleet and "50" in fleet:
        ratio = fleet["50"]["per_host_ms"] / fleet["10"]["per_host_ms"]
        add("fleet re-run time per host, 50 hosts vs 10", ratio, "<= 1.15 (flat)", ratio <= 1.15)
    for module, size in r.get("sizes_bytes", {}).items():
        limit = 2.5 if module == "warden_db" else 1.0
        add(f"{module} size", size / MiB, f"<= {limit} MiB", size <= limit * MiB, "MiB")
    return out


def _ms(entry):
    return f"{med(entry):.1f} ms ({entry['min_ms']:.0f}–{entry['max_ms']:.0f})"


def no_jails_line(whole):
    """The converged re-run without the jails step, both sides and the ratio."""
    ours, stock = whole["agent_yml_no_jails"], whole["stock_no_jails"]
    return (f"Converged re-run without jails (`--skip-tags jails`): `agent.yml` {_ms(ours)}; stock reference "
            f"{_ms(stock)}: {med(stock) / med(ours):.1f}× faster.")


def markdown(r):
    lines = [f"# warden benchmark, {r['date']}", "", f"{r['machine']}; {r['ansible_core']}; forks {r['settings']['forks']}.", ""]
    for where, title in (("local", "local connection"), ("ssh", "SSH to a loopback sshd")):
        if where not in r:
            continue
        d = r[where]
        f = d["floors"]
        lines += [
            f"## Converged step through ansible-playbook, {title}",
            "",
            f"Per step, median (min–max) over {r['settings']['runs' if where == 'local' else 'ssh_runs']} runs of "
            f"{d['copies']} copies, the play's fixed cost subtracted. *Module task*: the module with literal args (its own "
            "cost through Ansible); *role task*: the role's task as agent.yml runs it, Jinja included (the jails step "
            "loops over three jails); *stock tasks*: bench/stock doing the same check. Floors per task: trivial binary module "
            f"{_ms(f['binary'])} with the action plugin, {_ms(f['binary_plain'])} on the plain path; converged "
            f"`lineinfile` (pipelined Python) {_ms(f['python'])}."
            + (f" One bare remote command (multiplexed `ssh host true`) costs {_ms(d['exec'])} here: every path pays it per"
               " remote command (5 per task on the plain path, 1 with the action plugin or pipelining)." if "exec" in d else ""),
            "",
            "| step | module task, action plugin | module task, plain path | role task (as in agent.yml) | stock tasks | stock ÷ role task | module task ÷ floor |",
            "|---|---|---|---|---|---|---|",
        ]
        for step, s in d["steps"].items():
            lines.append(
                f"| {step} (`{MODULES[step]}`) | {_ms(s['module'])} | {_ms(s['module_plain'])} | {_ms(s['ours'])} | {_ms(s['stock'])} | "
                f"{med(s['stock']) / med(s['ours']):.1f}× | {med(s['module']) / med(f['binary']):.2f}× |"
            )
        whole = d.get("whole")
        if whole:
            lines += ["", f"Whole idempotent re-run ({title}): `agent.yml` {_ms(whole['agent_yml'])}"
                      + (f", plain path {_ms(whole['agent_yml_plain'])}" if "agent_yml_plain" in whole else "")
                      + f"; stock reference {_ms(whole['stock'])}: {med(whole['stock']) / med(whole['agent_yml']):.1f}× faster.", ""]
            if "stock_no_jails" in whole:
                lines += [no_jails_line(whole), ""]
        if "upload" in d:
            lines += ["| module | size | first task on a host (upload) | cached task | upload |", "|---|---|---|---|---|"]
            for module, u in d["upload"].items():
                lines.append(f"| `{module}` | {u['size_bytes']:,} B | {u['first_task_ms']} ms | {u['cached_task_ms']} ms | {u['upload_ms']} ms |")
            lines.append("")
    if "module_alone" in r:
        lines += ["## Each module alone (args file in, JSON out)", "", "| module | median (min–max) | tool calls |", "|---|---|---|"]
        for name, a in r["module_alone"].items():
            lines.append(f"| {name} | {_ms(a)} | {a.get('tool_calls_per_run', '')} |")
        lines.append("")
    if r.get("fleet"):
        lines += ["## Fleet: idempotent `fleet.yml` re-run", "", "| hosts | wall time | per host |", "|---|---|---|"]
        for size, fl in r["fleet"].items():
            lines.append(f"| {size} | {med(fl) / 1000:.1f} s | {fl['per_host_ms']:.0f} ms |")
        lines.append("")
    lines += ["## Targets", "", "| target | measured | bound | met |", "|---|---|---|---|"]
    for t in r.get("targets", []):
        lines.append(f"| {t['target']} | {t['measured']}{'×' if t['unit'] == 'x' else ' ' + t['unit']} | {t['bound']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def plot(r, path):
    """Fleet scaling and per-step ratios in one PNG; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    fleet = r.get("fleet", {})
    if fleet:
        sizes = [int(s) for s in fleet]
        left.plot(sizes, [fleet[str(s)]["per_host_ms"] / 1000 for s in sizes], marker="o")
        left.set_xlabel("hosts")
        left.set_ylabel("seconds per host")
        left.set_title("fleet.yml idempotent re-run, time per host")
        left.set_ylim(bottom=0)
        left.grid(alpha=0.3)
    steps = STEPS
    x = range(len(steps))
    width = 0.27
    series = [("stock ÷ warden role task, local", "local", lambda d, s: med(d["steps"][s]["stock"]) / med(d["steps"][s]["ours"])),
              ("stock ÷ warden role task, SSH", "ssh", lambda d, s: med(d["steps"][s]["stock"]) / med(d["steps"][s]["ours"])),
              ("module task ÷ trivial binary, local", "local",
               lambda d, s: med(d["steps"][s]["module"]) / med(d["floors"]["binary"]))]
    for i, (label, where, fn) in enumerate(series):
        if where in r:
            right.bar([p + (i - 1) * width for p in x], [fn(r[where], s) for s in steps], width, label=label)
    right.axhline(1, color="black", linewidth=0.8)
    right.set_yscale("log")
    right.set_xticks(list(x))
    right.set_xticklabels(steps)
    right.set_ylabel("ratio (log)")
    right.set_title("per step, converged")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, axis="y")
    fig.suptitle(f"warden bench {r['date']}, {r['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
