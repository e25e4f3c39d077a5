"""warden_drift: a machine-readable drift report of a run, for cron and check runs.

With WARDEN_DRIFT_REPORT=<file> set, writes at the end of the run a JSON object: per host,
its counts and each task that changed (or, in check mode, would change) or failed, with a
summary of its diff (headers and counts of added and removed lines, never the lines, so no
secret can be in it). It also prints one line per host. Without the variable it does nothing.
"""

from __future__ import annotations

DOCUMENTATION = """
name: warden_drift
type: aggregate
short_description: JSON drift report (per host, each changed or failed task) for cron runs
version_added: "0.1.0"
description:
  - With the environment variable WARDEN_DRIFT_REPORT naming a file, writes a JSON report of the run there and prints
    one line per host. Diffs are summarized (headers, added and removed line counts), never copied.
requirements:
  - enable in ansible.cfg (callbacks_enabled = warden_drift)
"""

# Imports below the documentation, as ansible-test's validate-modules wants them.
import json
import os
import time

from ansible.plugins.callback import CallbackBase


def _diff_summary(diff):
    entries = diff if isinstance(diff, list) else [diff]
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        before = entry.get("before", "")
        after = entry.get("after", "")
        before_lines = before.splitlines() if isinstance(before, str) else []
        after_lines = after.splitlines() if isinstance(after, str) else []
        out.append(
            {
                "header": entry.get("after_header") or entry.get("before_header") or "",
                "added": len([line for line in after_lines if line not in before_lines]),
                "removed": len([line for line in before_lines if line not in after_lines]),
            }
        )
    return out


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "warden_drift"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.path = os.environ.get("WARDEN_DRIFT_REPORT")
        self.hosts = {}
        self.check_mode = False
        self.started = time.time()

    def _host(self, name):
        return self.hosts.setdefault(name, {"ok": 0, "changed": 0, "failed": 0, "unreachable": False, "tasks": []})

    @staticmethod
    def _bookkeeping(result):
        return result._task.action in ("ansible.builtin.set_fact", "set_fact", "ansible.builtin.debug", "debug")

    def v2_playbook_on_play_start(self, play):
        self.check_mode = self.check_mode or bool(getattr(play, "check_mode", False))

    def _record(self, result, status):
        if not self.path:
            return
        host = self._host(result._host.get_name())
        res = result._result
        task = result._task
        entry = {"task": task.get_name(), "action": task.action, "status": status}
        step = res.get("item")
        if isinstance(step, dict) and "warden_step" in step and "task" in step:
            # A step of warden_agent_run (agent.yml, fleet.yml): reported as the role task it is.
            entry.update(task=str(step["task"]), action=str(step.get("action", task.action)), step=str(step["warden_step"]))
        if task.no_log:
            entry["no_log"] = True
        if status == "failed" and not task.no_log:
            entry["msg"] = str(res.get("msg", ""))[:500]
        if "diff" in res and not task.no_log:
            entry["diff"] = _diff_summary(res["diff"])
        item = res.get("item") if not task.no_log else None
        if isinstance(item, dict) and "warden_step" in item:
            item = item.get("label")
        if isinstance(item, (str, int)):
            entry["item"] = item
        host["tasks"].append(entry)

    def v2_runner_on_ok(self, result):
        # A loop's items were recorded one by one; its summary result is not a task of its own.
        if self.path and not self._bookkeeping(result):
            self._host(result._host.get_name())
            if result._result.get("changed") and "results" not in result._result:
                self._record(result, "changed")

    def v2_runner_item_on_ok(self, result):
        if self.path and result._result.get("changed") and not self._bookkeeping(result):
            self._record(result, "changed")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        # A loop whose items were recorded one by one (warden_agent_run's steps): not again.
        if self.path and not ignore_errors and not (result._result.get("results") and self._stepwise(result._result)):
            self._record(result, "failed")

    def v2_runner_item_on_failed(self, result):
        item = result._result.get("item")
        if self.path and isinstance(item, dict) and "warden_step" in item:
            self._record(result, "failed")

    @staticmethod
    def _stepwise(res):
        return any(isinstance(r, dict) and isinstance(r.get("item"), dict) and "warden_step" in r["item"] for r in res["results"])

    def v2_runner_on_unreachable(self, result):
        if self.path:
            self._host(result._host.get_name())["unreachable"] = True
            self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if not self.path:
            return
        # Hosts that only ran bookkeeping tasks (the summary play's localhost) are left out.
        for name in stats.processed:
            if name not in self.hosts:
                continue
            summary = stats.summarize(name)
            host = self.hosts[name]
            host["ok"], host["changed"], host["failed"] = summary["ok"], summary["changed"], summary["failures"]
            host["unreachable"] = host["unreachable"] or summary["unreachable"] > 0
        report = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - self.started, 1),
            "check_mode": self.check_mode,
            "hosts": self.hosts,
        }
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
            handle.write("\n")
        verb = "would change" if self.check_mode else "changed"
        for name in sorted(self.hosts):
            host = self.hosts[name]
            if host["unreachable"]:
                line = "UNREACHABLE"
            elif host["failed"]:
                line = "FAILED: " + "; ".join(t["task"] for t in host["tasks"] if t["status"] == "failed")
            else:
                changed = [t["task"] for t in host["tasks"] if t["status"] == "changed"]
                counts = {}
                for task in changed:
                    counts[task] = counts.get(task, 0) + 1
                parts = [f"{task} (x{n})" if n > 1 else task for task, n in counts.items()]
                line = f"{len(changed)} {verb}" + (": " + "; ".join(parts) if parts else "")
            self._display.display(f"warden drift: {name}: {line}")
