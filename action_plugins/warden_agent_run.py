"""Runs every step warden_agent_plan planned, in one remote command, and reports them one by one.

Used as a loop over the plan's steps (``loop: "{{ plan.steps }}"``, ``step: "{{ item }}"``):
the first item templates every step's module arguments from the step roles' own tasks (as the
role would: the roles' defaults under the play's variables, the agent's layout as
``warden_agent``, the loop item as ``item``), then runs all of them in one remote command (see
warden_binary.py, ``build_batch_script``): each step's cached binary checked and run in order
with its args on its own standard input, stopping at the first failure. Each item then returns
its own step's result, as the module returned it: changed/failed, msg, diff, check-mode
prediction. A step after a failed one is skipped, naming the step that failed.

Extra remote commands only when needed: binaries the probe found missing from the target's
cache are uploaded first (one temporary directory, one upload per binary, one install command,
one removal), and a layout task between steps (the shared LLM jail's address) ends one batch and
starts the next. Nothing is stored anywhere: the results live in this worker process for the
loop's duration.
"""

from __future__ import annotations

import sys  # WARDEN_SHARED_LOADER

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.loader import action_loader  # WARDEN_SHARED_LOADER
from ansible.utils.display import Display

# The shared code in this directory; the collection's copy imports it from plugins/plugin_utils
# (bin/build-collection rewrites the WARDEN_SHARED lines).
warden_binary = sys.modules[action_loader.get("warden_binary", class_only=True).__module__]  # WARDEN_SHARED plugin_utils
warden_agent_plan = sys.modules[action_loader.get("warden_agent_plan", class_only=True).__module__]  # WARDEN_SHARED plugin_utils

display = Display()
ARGS = {"plan", "step"}
# Results of a loop's steps, by (task, host): the first item runs them all, each item takes its own.
_DONE: dict = {}


def skipped(why):
    return {"changed": False, "skipped": True, "skip_reason": why}


class ActionModule(warden_binary.ActionModule):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = self._begin(tmp, task_vars, ARGS)
        plan, step = self._task.args.get("plan"), self._task.args.get("step")
        if not isinstance(plan, dict) or not isinstance(plan.get("steps"), list) or not isinstance(plan.get("layouts"), dict):
            raise AnsibleActionFail("plan must be what warden_agent_plan returned (register it)")
        if not isinstance(step, dict) or not isinstance(step.get("id"), int) or not 0 <= step["id"] < len(plan["steps"]):
            raise AnsibleActionFail("step must be one of the plan's steps (loop over plan.steps)")
        if plan.get("failed"):
            raise AnsibleActionFail("the plan failed; nothing to run")
        key = (self._task._uuid, task_vars.get("inventory_hostname"))
        done = _DONE.get(key)
        if done is None or step["id"] not in done:
            try:
                done = self._run_from(plan, step["id"], task_vars)
            except Exception as e:  # noqa: BLE001 - whatever stopped the run, nothing after it may run again
                # The run stopped without per-step results (an install that failed, a binary that
                # fails the cache check, an error of this plugin): this item fails, and the later
                # items report it rather than start another run of the steps on the target.
                label = plan["steps"][step["id"]].get("label", step["id"])
                done = {i: skipped(f"not run or not reported: the run failed at {label}")
                        for i in range(step["id"] + 1, len(plan["steps"]))}
                done[step["id"]] = {"failed": True, "changed": False, "msg": f"{label}: {e}"}
            _DONE[key] = done
        result.update(done[step["id"]])
        return result

    def _run_from(self, plan, start, task_vars):
        """Every step from `start` on: {id: result}."""
        roles = warden_agent_plan.Roles()
        base = roles.base_vars()
        renderers = {}
        items = plan["steps"][start:]
        layouts = dict(plan["layouts"])
        registered = {agent: {} for agent in layouts}
        probe = plan.get("probe") or {}
        platform = probe.get("platform") or self._var(task_vars, "warden_platform", None)
        cache_ok = dict(probe.get("cache") or {})
        cache_dir = self._cache_dir(task_vars)
        cache = boolean(self._var(task_vars, "warden_binary_cache", True), strict=False)
        single = len(plan.get("agents") or layouts) == 1
        results, batch, failed = {}, [], []

        def flush():
            if not batch:
                return
            steps = [entry[1] for entry in batch]
            outcomes = self._run_steps(steps, cache_ok) if cache else self._run_plain(steps, platform, cache_dir, task_vars)
            for (item, _step, op), res in zip(batch, outcomes, strict=True):
                if failed:
                    results[item["id"]] = skipped(f"not run: {failed[0]} failed")
                    continue
                results[item["id"]] = res
                if op.register:
                    registered[item["agent"]][op.register] = res
                if res.get("failed") or res.get("unreachable"):
                    failed.append(item["label"])
            batch.clear()

        try:
            for item in items:
                if failed:
                    results[item["id"]] = skipped(f"not run: {failed[0]} failed")
                    continue
                agent = item["agent"]
                op = roles.op(item["role"], item["op"])
                if op.action in warden_agent_plan.CONTROLLER:
                    # It may read what the steps before it registered: they run first.
                    flush()
                    if failed:
                        results[item["id"]] = skipped(f"not run: {failed[0]} failed")
                        continue
                if agent not in renderers or renderers[agent].vars["warden_agent"] is not layouts[agent]:
                    # A new layout (the shared LLM jail's address) starts afresh: values may derive from it.
                    renderers[agent] = warden_agent_plan.Renderer(self, warden_agent_plan.step_vars(base, task_vars, agent, layouts[agent]))
                try:
                    t = renderers[agent].child(**registered[agent], **({"item": item["item"]} if op.loop is not None else {}))
                    if op.action in warden_agent_plan.CONTROLLER:
                        res = self._controller_op(op, t, task_vars, single)
                        if not res.get("failed"):
                            layouts[agent] = res["ansible_facts"]["warden_agent"]
                            if not single:
                                del res["ansible_facts"]
                        else:
                            failed.append(item["label"])
                        results[item["id"]] = res
                        if op.register:
                            registered[agent][op.register] = res
                        continue
                    args = dict(t.render(op.args))
                    self._update_module_args(op.action, args, task_vars)
                    if op.no_log and boolean(t.render(op.no_log), strict=False):
                        args["_ansible_no_log"] = True
                    if op.check_mode is not None:
                        args["_ansible_check_mode"] = boolean(t.render(op.check_mode), strict=False)
                    if cache:
                        binary = self._module_binary(op.action, platform)
                        batch.append((item, warden_binary.cached_step(op.action, binary, cache_dir, self._payload(args)), op))
                    else:
                        batch.append((item, (op.action, args), op))
                except AnsibleConnectionFailure:
                    raise
                except AnsibleError as e:
                    # This step cannot be templated: the ones before it run, it fails, the rest do not.
                    flush()
                    if failed:
                        results[item["id"]] = skipped(f"not run: {failed[0]} failed")
                    else:
                        results[item["id"]] = {"failed": True, "changed": False, "msg": f"{item['task']}: {e}"}
                        failed.append(item["label"])
            flush()
        except AnsibleConnectionFailure as e:
            for item in items:
                results.setdefault(item["id"], {"unreachable": True, "changed": False, "msg": str(e)})
        for item in items:
            op = roles.op(item["role"], item["op"])
            res = results[item["id"]]
            if op.no_log and not res.get("skipped"):
                res["_ansible_no_log"] = True
        return results

    def _controller_op(self, op, t, task_vars, single):
        """A layout task between steps (the shared LLM jail's address): run on the controller."""
        args = t.render(op.args)
        if "layout" not in args:
            raise AnsibleActionFail(f"{op.role}: {op.name}: only the layout's shared_llm form can run between steps")
        answer = warden_agent_plan.layout(self, task_vars, {"shared_llm": {"layout": args.get("layout"), "ip": args.get("shared_llm_ip")}})
        if answer.get("failed"):
            return {"failed": True, "changed": False, "msg": answer.get("msg", "the layout failed"), "problems": answer.get("problems", [])}
        return {"changed": False, "ansible_facts": {"warden_agent": answer["layout"]}}

    def _run_steps(self, steps, cache_ok):
        """Runs steps in as few remote commands as the cache allows: binaries known to be
        missing are uploaded first; a binary that fails the check in the batch (changed since
        the probe) is uploaded and the batch goes on from it. Returns each step's result."""
        missing = {s.remote: s for s in steps if cache_ok.get(s.module) is False}
        installed = set()
        if missing:
            display.vvv(f"warden: uploading {', '.join(sorted(s.module for s in missing.values()))} (not in the target's cache)")
            self._install_many(list(missing.values()))
            installed.update(missing)
            for s in missing.values():
                cache_ok[s.module] = True
        env = self._compute_environment_string()
        outcomes = [None] * len(steps)
        start = 0
        while start < len(steps):
            part = steps[start:]
            nonce = warden_binary.new_nonce()
            script = warden_binary.build_batch_script(part, env, nonce)
            res = self._low_level_execute_command("/bin/sh -s", sudoable=True, in_data=script.encode())
            pieces = warden_binary.split_batch(res, len(part), nonce)
            restart = None
            for i, piece in enumerate(pieces):
                if piece is None:
                    # The command ended before this step began (the connection, the shell): say what it printed.
                    outcomes[start + i] = {
                        "failed": True, "changed": False, "rc": res.get("rc"),
                        "msg": f"the remote command ended before this step began (rc {res.get('rc')})",
                        "module_stdout": res.get("stdout", "")[-2000:], "module_stderr": res.get("stderr", "")[-2000:],
                    }
                    return self._fill(outcomes)
                if "miss" in piece:
                    step = part[i]
                    if step.remote in installed:
                        raise AnsibleActionFail(f"the module binary installed on the target fails the cache check: {piece['miss']}")
                    display.vvv(f"warden: cache miss on the target ({piece['miss']}); uploading {step.binary}")
                    self._install_many([step])
                    installed.add(step.remote)
                    restart = start + i
                    break
                data = warden_binary.parse_result(piece)
                if piece["rc"] not in (0, None) and not data.get("failed"):
                    data.update(failed=True, msg=data.get("msg") or f"the module exited {piece['rc']}")
                outcomes[start + i] = data
                if data.get("failed"):
                    return self._fill(outcomes)
            if restart is None:
                return self._fill(outcomes)
            start = restart
        return self._fill(outcomes)

    def _run_plain(self, steps, platform, cache_dir, task_vars):
        """warden_binary_cache: false: each step the plain way, one after the other (library/:
        Ansible runs the module itself; the collection: its platform build uploaded for the step
        only), stopping at the first failure."""
        outcomes = [None] * len(steps)
        env = self._compute_environment_string()
        for n, (module, args) in enumerate(steps):
            resolved = self._resolve_module_named(module)
            if not resolved.endswith(".py"):
                data = self._execute_module(module_name=self._module_name(module), module_args=args, task_vars=task_vars)
            else:
                step = warden_binary.cached_step(module, self._module_binary(module, platform), cache_dir, self._payload(args))
                data = warden_binary.parse_result(self._run_uploaded(step, env))
            outcomes[n] = data
            if data.get("failed") or data.get("unreachable"):
                break
        return self._fill(outcomes)

    @staticmethod
    def _fill(outcomes):
        """Steps after a failure: not run."""
        return [o if o is not None else {"changed": False, "skipped": True, "skip_reason": "not run"} for o in outcomes]
