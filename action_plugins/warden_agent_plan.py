"""Plans every step of a host's warden agents for warden_agent_run: one probe, then controller work.

The fast path of ``agent.yml`` and ``fleet.yml`` (README, "One round trip per host") is two
tasks: this one, and ``warden_agent_run`` looping over the steps it plans. This one:

1. probes the host in one remote command (``warden_host_probe``'s: platform, ``bastille -v``,
   which cached module binaries are valid), or none when the platform is known and no agent's
   jail names depend on the Bastille version;
2. derives each agent's layout with the ``warden_agent`` role's layout task, templated as the
   role would template it, and the layout binary (``warden_agent_layout``), after checking the
   role's argument specs; a problem of any agent fails the host before anything runs;
3. lists the steps: each module task of the step roles (``warden_network``, ``warden_pf``,
   ``warden_jails``, ``warden_db``, ``warden_env``, ``warden_service``, in the deployment guide's
   order; one step per loop item), selected by the play's ``--tags``/``--skip-tags`` with the
   step's tag (``network`` … ``service``) as if the role carried it, and by each task's ``when``.

The step roles' own files are the one source of every module's arguments: ``warden_agent_run``
templates their tasks the same way at run time. This file reads them (``Roles``) and holds the
tag rule; both plugins use it. No change anywhere: check mode runs it the same way.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys  # WARDEN_SHARED_LOADER

import yaml
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.loader import action_loader  # WARDEN_SHARED_LOADER
from ansible.template import trust_as_template

# The shared code in this directory; the collection's copy imports it from plugins/plugin_utils
# (bin/build-collection rewrites the WARDEN_SHARED lines).
warden_binary = sys.modules[action_loader.get("warden_binary", class_only=True).__module__]  # WARDEN_SHARED plugin_utils
warden_agent_layout = sys.modules[action_loader.get("warden_agent_layout", class_only=True).__module__]  # WARDEN_SHARED plugin_utils

HERE = os.path.dirname(os.path.realpath(__file__))
# The roles next to the plugins: action_plugins/../roles in the repository, plugins/action/../../roles
# (or plugins/plugin_utils/../../roles) in the collection.
ROLE_DIRS = [os.path.join(HERE, "..", "roles"), os.path.join(HERE, "..", "..", "roles")]
AGENT_ROLE = "warden_agent"
# Step tag, role: the deployment guide's order.
STEPS = (
    ("network", "warden_network"),
    ("pf", "warden_pf"),
    ("jails", "warden_jails"),
    ("db", "warden_db"),
    ("env", "warden_env"),
    ("service", "warden_service"),
)
# Actions a step role may use: warden's modules (run on the target, batched) and the layout
# (run on the controller between batches).
MODULES = {"warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd", "warden_vm"}
CONTROLLER = {"warden_agent_layout"}
PROBE = "warden_host_probe"
# Task keywords the reader understands; any other makes it refuse the role file.
KEYWORDS = {"name", "loop", "loop_control", "register", "when", "tags", "no_log", "check_mode"}
UNTAGGED = frozenset(["untagged"])
ARGS = {"agents"}


@dataclasses.dataclass(frozen=True)
class Op:
    """One task of a role file, as the runner runs it."""

    role: str
    index: int
    name: str
    action: str
    args: dict
    loop: object = None
    label: object = None
    register: str | None = None
    when: tuple = ()
    tags: tuple = ()
    no_log: object = False
    check_mode: object = None


def evaluate_tags(tags, only_tags, skip_tags):
    """Whether a task with these tags runs under --tags/--skip-tags: ansible-core's rule
    (lib/ansible/playbook/taggable.py, Taggable.evaluate_tags)."""
    tags = set(tags) or UNTAGGED
    only_tags, skip_tags = set(only_tags or ()), set(skip_tags or ())
    run = True
    if only_tags:
        run = (
            "always" in tags
            or ("all" in only_tags and "never" not in tags)
            or not tags.isdisjoint(only_tags)
            or ("tagged" in only_tags and tags != UNTAGGED and "never" not in tags)
        )
    if run and skip_tags:
        if "all" in skip_tags:
            run = "always" in tags and "always" not in skip_tags
        elif not tags.isdisjoint(skip_tags) or ("tagged" in skip_tags and tags != UNTAGGED):
            run = False
    return run


def as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Roles:
    """warden's roles as data: each role's defaults, argument specs and tasks."""

    def __init__(self, loader=None):
        self.dir = next((d for d in ROLE_DIRS if os.path.isdir(os.path.join(d, AGENT_ROLE))), None)
        if self.dir is None:
            raise AnsibleActionFail(f"warden's roles are not next to the plugin: looked in {', '.join(map(os.path.normpath, ROLE_DIRS))}")
        self.loader = loader
        self.defaults, self.specs, self.ops = {}, {}, {}
        for role in [AGENT_ROLE, *(r for _step, r in STEPS)]:
            self._load(role)

    def _file(self, role, *parts):
        return os.path.join(self.dir, role, *parts)

    @staticmethod
    def _yaml(path, trusted):
        """A role file's data; with `trusted`, its strings are templates, as when Ansible loads
        the role (libyaml: ansible-core's own loader costs ~15 ms a file, in every worker)."""
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return trusted_tree(data) if trusted else data

    def _load(self, role):
        self.defaults[role] = self._yaml(self._file(role, "defaults", "main.yml"), True) or {}
        specs = self._yaml(self._file(role, "meta", "argument_specs.yml"), False) or {}
        self.specs[role] = ((specs.get("argument_specs") or {}).get("main") or {}).get("options") or {}
        tasks = self._yaml(self._file(role, "tasks", "main.yml"), True) or []
        ops = []
        for task in tasks:
            ops.extend(self._ops(role, task, len(ops), (), ()))
        self.ops[role] = ops

    def _refuse(self, role, task, why):
        raise AnsibleActionFail(
            f"roles/{role}/tasks/main.yml: the task {task.get('name', '?')!r} is not one warden_agent_run can run ({why});"
            " run the roles one by one instead"
        )

    def _ops(self, role, task, index, when, tags):
        if not isinstance(task, dict):
            self._refuse(role, {}, "not a mapping")
        if "block" in task:
            extra = set(task) - {"name", "block", "when", "tags"}
            if extra:
                self._refuse(role, task, f"block keywords {sorted(extra)}")
            out = []
            for inner in task["block"]:
                out.extend(self._ops(role, inner, index + len(out), (*when, *as_list(task.get("when"))), (*tags, *as_list(task.get("tags")))))
            return out
        actions = [k for k in task if k not in KEYWORDS]
        if len(actions) != 1:
            self._refuse(role, task, f"keywords {sorted(actions)}")
        action = actions[0]
        short = action.split(".")[-1]
        if short not in MODULES | CONTROLLER | {PROBE}:
            self._refuse(role, task, f"action {action}")
        args = task[action] or {}
        if not isinstance(args, dict):
            self._refuse(role, task, "arguments not given as a mapping")
        control = task.get("loop_control") or {}
        if set(control) - {"label"}:
            self._refuse(role, task, f"loop_control {sorted(control)}")
        return [Op(role, index, task.get("name", short), short, args, task.get("loop"), control.get("label"), task.get("register"),
                   (*when, *as_list(task.get("when"))), (*tags, *as_list(task.get("tags"))), task.get("no_log", False),
                   task.get("check_mode"))]

    def base_vars(self):
        """Every role's defaults: the lowest precedence, under whatever the play's variables hold."""
        out = {}
        for role in [AGENT_ROLE, *(r for _step, r in STEPS)]:
            out.update(self.defaults[role])
        return out

    def op(self, role, index):
        return self.ops[role][index]


def trusted_tree(data):
    """Every string of a role file marked as a template (ansible-core's TrustedAsTemplate)."""
    if isinstance(data, str):
        return trust_as_template(data)
    if isinstance(data, dict):
        return {trusted_tree(k) if isinstance(k, str) else k: trusted_tree(v) for k, v in data.items()}
    if isinstance(data, list):
        return [trusted_tree(v) for v in data]
    return data


def templar(action, variables):
    return action._templar.copy_with_new_env(available_variables=variables)


# "{{ name }}", "{{ name.key.key }}", "{{ name[var] }}": a template that only names a value.
REFERENCE = re.compile(r"^\{\{\s*([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*|\[[A-Za-z_]\w*\])*)\s*\}\}$")
PART = re.compile(r"\.([A-Za-z_]\w*)|\[([A-Za-z_]\w*)\]")
# Values the plugins put there themselves: plain data, never templates.
PLAIN_ROOTS = frozenset({"warden_agent", "item"})
MISSING = object()


def plain(value):
    """A value Jinja would hand back as it is: a scalar that holds no template."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value and "{#" not in value
    return value is None or isinstance(value, (bool, int, float))


class Renderer:
    """Templates role data for one agent as ansible-core would, doing less of the work: a
    variable is rendered once (by ansible-core's templar) and then reused, and a template that
    only names a value ("{{ warden_agent.paths.rc_conf }}", "{{ warden_pf_state }}") is read
    from it directly, as Jinja would read it; anything else goes to the templar. Compiling a
    template costs 2-3 ms in ansible-core 2.19, and a host's steps hold about a hundred."""

    def __init__(self, action, variables, cache=None, direct=PLAIN_ROOTS):
        self.action = action
        self.templar = templar(action, variables)
        self.vars = variables
        self.cache = {} if cache is None else cache
        self.direct = direct

    def child(self, **extra):
        """The same variables plus `extra` (a loop item, registered results: plain data, read
        as they are), sharing the rendered values."""
        return Renderer(self.action, {**self.vars, **extra}, self.cache, self.direct | set(extra))

    def var(self, name):
        """A variable's rendered value (KeyError when it is not defined)."""
        if name in self.direct:
            return self.vars[name]
        if name not in self.cache:
            value = self.vars[name]
            self.cache[name] = value if plain(value) else self.templar.template(value)
        return self.cache[name]

    def _reference(self, text):
        match = REFERENCE.match(text)
        if not match:
            return MISSING
        try:
            value = self.var(match.group(1))
            for key, index in PART.findall(match.group(2)):
                key = key or self.var(index)
                if not isinstance(value, dict) or not isinstance(key, str) or key not in value:
                    return MISSING
                value = value[key]
        except KeyError:
            return MISSING
        return value

    def render(self, value):
        """`value` templated; a mapping loses the keys that render to omit."""
        if isinstance(value, dict):
            out, rest = {}, {}
            for key, item in value.items():
                done = self._fast(item)
                if done is MISSING:
                    rest[key] = item
                else:
                    out[key] = done
            if rest:
                out.update(self.templar.template(rest))
            return out
        done = self._fast(value)
        return self.templar.template(value) if done is MISSING else done

    def _fast(self, value):
        if isinstance(value, str):
            return value if plain(value) else self._reference(value)
        if isinstance(value, list):
            out = [self._fast(v) for v in value]
            return MISSING if any(v is MISSING for v in out) else out
        return value if plain(value) else MISSING

    def condition(self, conditions):
        return all(self.templar.evaluate_conditional(c) for c in conditions)


def step_vars(base, task_vars, agent, layout, registered=None):
    """The variables a step role's task sees for one agent: the roles' defaults under the
    play's variables, the agent's name and layout, and what earlier tasks registered."""
    return {**base, **task_vars, "agent_name": agent, "warden_agent": layout, **(registered or {})}


def validate(renderer, role, spec):
    """A role's argument spec, checked as ansible-core's validate_argument_spec checks it."""
    if not spec:
        return []
    provided = {name: renderer.var(name) for name in spec if name in renderer.vars}
    found = ArgumentSpecValidator(spec).validate(provided, validate_role_argument_spec=True)
    return [f"{role}: {message}" for message in found.error_messages]


def layout(action, task_vars, request):
    """One answer of the layout binary (warden_agent_layout's, run on the controller)."""
    plugin = warden_agent_layout.ActionModule
    return plugin._layout(action, plugin._binary(action, task_vars), request)


class ActionModule(warden_binary.ActionModule):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = self._begin(tmp, task_vars, ARGS)
        agents = self._task.args.get("agents")
        if not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents):
            raise AnsibleActionFail(f"agents must be a list of agent names, not {agents!r}")

        roles = Roles()
        base = roles.base_vars()
        only, skip = task_vars.get("ansible_run_tags") or ["all"], task_vars.get("ansible_skip_tags") or []
        selected = [(step, role) for step, role in STEPS if evaluate_tags([step], only, skip)]

        # Every agent's settings first: the warden_agent role's argument spec.
        probe_op, layout_op = self._agent_ops(roles)
        before = {agent: Renderer(self, step_vars(base, task_vars, agent, None)) for agent in agents}
        problems = [f"agent {a}: {p}" for a in agents for p in validate(before[a], AGENT_ROLE, roles.specs[AGENT_ROLE])]
        if problems:
            return self._failed(result, problems)

        modules = sorted({op.action for _step, role in selected for op in roles.ops[role] if op.action in MODULES})
        if not boolean(self._var(task_vars, "warden_binary_cache", True), strict=False):
            modules = []  # the plain path: no cache to check
        probe = self._plan_probe(task_vars, [before[a].render(probe_op.args) for a in agents], modules)

        layouts, steps = {}, []
        for agent in agents:
            args = (before[agent].child(**{probe_op.register: probe}) if probe_op.register else before[agent]).render(layout_op.args)
            answer = layout(self, task_vars, {"derive": warden_agent_layout.ActionModule._scrubbed(dict(args))})
            if answer.get("failed"):
                problems += [f"agent {agent}: {p}" for p in answer.get("problems") or [answer.get("msg", "the layout failed")]]
                continue
            layouts[agent] = answer["layout"]
        if problems:
            return self._failed(result, problems)

        for agent in agents:
            renderer = Renderer(self, step_vars(base, task_vars, agent, layouts[agent]))
            for step, role in STEPS:
                # The role's argument spec runs whenever the role's tag would (its task is tagged always).
                if not evaluate_tags([step, "always"], only, skip):
                    continue
                problems += [f"agent {agent}: {p}" for p in validate(renderer, role, roles.specs[role])]
                steps += self._steps(roles, agent, step, role, renderer, only, skip)
        if problems:
            return self._failed(result, problems)
        for n, item in enumerate(steps):
            item["id"] = n

        result.update(changed=False, agents=agents, layouts=layouts, steps=steps, probe=probe,
                      ansible_facts={"warden_platform": probe["platform"]})
        if len(agents) == 1:
            result["ansible_facts"]["warden_agent"] = layouts[agents[0]]
        return result

    @staticmethod
    def _failed(result, problems):
        result.update(failed=True, msg="; ".join(problems), problems=problems)
        return result

    @staticmethod
    def _agent_ops(roles):
        ops = roles.ops[AGENT_ROLE]
        probe = [op for op in ops if op.action == PROBE]
        layout = [op for op in ops if op.action == "warden_agent_layout"]
        if len(probe) != 1 or len(layout) != 1 or len(ops) != 2:
            raise AnsibleActionFail(f"roles/{AGENT_ROLE}/tasks/main.yml must hold one {PROBE} task and one warden_agent_layout task")
        return probe[0], layout[0]

    def _plan_probe(self, task_vars, probe_args, modules):
        """The warden_agent role's probe, once for all agents: skipped (no command) when the
        platform is known and no agent needs the Bastille version."""
        bastille = any(boolean(args.get("bastille", True), strict=True) for args in probe_args)
        known = self._var(task_vars, "warden_platform", None)
        if known and not bastille:
            return {"platform": known, "bastille_version": "", "bastille_rc": None, "cache": {}, "probed": False}
        found = self._probe(task_vars, modules=modules, bastille=bastille)
        return {
            "platform": found["platform"],
            "bastille_version": found["bastille_version"],
            "bastille_rc": found["bastille_rc"],
            "cache": {m: reason is None for m, reason in found["cache"].items()},
            "probed": True,
        }

    @staticmethod
    def _steps(roles, agent, step, role, renderer, only, skip):
        """The steps of one role for one agent: each module or layout task the tags and its
        `when` select, once per loop item."""
        out = []
        for op in roles.ops[role]:
            if not evaluate_tags([step, *op.tags], only, skip) or not renderer.condition(op.when):
                continue
            items = [None] if op.loop is None else renderer.render(op.loop)
            if not isinstance(items, list):
                raise AnsibleActionFail(f"roles/{role}/tasks/main.yml: {op.name}: loop is not a list: {items!r}")
            for item in items:
                label = None
                if op.loop is not None:
                    label = renderer.child(item=item).render(op.label) if op.label is not None else item
                out.append({
                    "warden_step": step,
                    "agent": agent,
                    "role": role,
                    "op": op.index,
                    "task": f"{role} : {op.name}",
                    "action": op.action,
                    "item": item,
                    "label": f"{agent} {step}" + (f" ({label})" if label is not None else "")
                    + ("" if op.index == 0 or op.loop is not None else f": {op.name}"),
                })
        return out
