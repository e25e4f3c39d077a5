"""Derives and checks a warden agent's layout on the controller: the `warden_agent` fact.

The layout (jail kinds, names, addresses, `.env` keys, and the rules that check them) lives
once, in the Rust crate `warden_layout` that the modules use too. This plugin runs its
controller-side binary, ``warden_layout_<system>_<arch>`` built for the controller, with one
JSON request on stdin, and sets the ``warden_agent`` fact from the answer. No connection to
the target, no remote command, nothing changed anywhere: check mode runs it the same way.

Two uses:

* derive (the ``warden_agent`` role): ``agent``, ``host``, ``agents``, ``defaults``,
  ``bastille_version`` (what ``bastille -v`` printed on the host), ``jail_separator``,
  ``jail_suffixes``, ``packages``, ``services``, ``secrets_dir``, ``bridge``, ``ext_if``,
  ``root``, ``file_owner``, ``file_group``, ``tmux_path``, ``tmux_socket_dir``. Every problem
  with the settings comes back at once, in ``msg`` and ``problems``.
* point an agent at a shared LLM jail (the ``warden_jails`` role): ``layout`` (the current
  ``warden_agent``) and ``shared_llm_ip`` (that jail's address as ``bastille_jail`` reports
  it, ``10.0.9.4/24``).

The binary is found, in order: the ``warden_layout_binary`` variable (a path); the
repository's ``library/`` (``make library`` builds it there); the installed collection's
``controller/`` (``bin/build-collection`` puts the build machine's there).
"""

from __future__ import annotations

import json
import os
import subprocess

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

try:  # ansible-core 2.19+: tagged values need the module profile's encoder
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:  # pragma: no cover - older ansible-core
    Direction = get_module_encoder = None

HERE = os.path.dirname(os.path.realpath(__file__))
# Repository checkout (action_plugins/ next to library/), installed collection
# (plugins/action/ two levels below controller/).
SEARCH = [os.path.join(HERE, "..", "library"), os.path.join(HERE, "..", "..", "controller")]
DERIVE = {
    "agent", "host", "agents", "defaults", "bastille_version", "jail_separator", "jail_suffixes", "packages",
    "services", "secrets_dir", "bridge", "ext_if", "root", "file_owner", "file_group", "tmux_path", "tmux_socket_dir",
}
SHARED_LLM = {"layout", "shared_llm_ip"}
TIMEOUT = 60


def controller_platform():
    uname = os.uname()
    return f"{uname.sysname.lower()}_{uname.machine}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if "layout" in args:
            request = {"shared_llm": {"layout": args.get("layout"), "ip": args.get("shared_llm_ip")}}
            allowed = SHARED_LLM
        else:
            request = {"derive": self._scrubbed(args)}
            allowed = DERIVE
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters: {', '.join(unknown)} (supported: {', '.join(sorted(allowed))})")

        answer = self._layout(self._binary(task_vars), request)
        if answer.get("failed"):
            result.update(failed=True, msg=answer.get("msg", "the layout failed"), problems=answer.get("problems", []))
            return result
        result.update(changed=False, ansible_facts={"warden_agent": answer["layout"]})
        return result

    @staticmethod
    def _scrubbed(args):
        """The agents with any db_password reduced to `given`: the layout only needs to
        know whether there is one, and the secret stays out of the binary's input."""
        agents = args.get("agents")
        if isinstance(agents, dict):
            args["agents"] = {
                name: ({**entry, "db_password": True} if isinstance(entry, dict) and entry.get("db_password") is not None else entry)
                for name, entry in agents.items()
            }
        return args

    def _binary(self, task_vars):
        given = task_vars.get("warden_layout_binary")
        if given:
            path = os.path.expanduser(str(given))
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
            raise AnsibleActionFail(f"warden_layout_binary {path} is not an executable file")
        name = f"warden_layout_{controller_platform()}"
        candidates = [os.path.normpath(os.path.join(d, name)) for d in SEARCH]
        for path in candidates:
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise AnsibleActionFail(
            f"the controller binary {name} (the agent layout, run on this controller) is missing: looked for "
            f"{' and '.join(candidates)}. Build it on this controller: `make library` in the warden repository, "
            f"or `cargo build --release -p warden_layout` and copy target/release/warden_layout to {candidates[0]} "
            f"(in an installed collection: {candidates[1]}); or set warden_layout_binary to its path."
        )

    def _layout(self, binary, request):
        if get_module_encoder is not None:
            payload = json.dumps(request, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE))
        else:  # pragma: no cover
            payload = json.dumps(request)
        try:
            done = subprocess.run([binary], input=payload, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise AnsibleActionFail(f"{binary} gave no answer within {TIMEOUT} s") from None
        except OSError as e:
            raise AnsibleActionFail(f"cannot run {binary}: {e}") from None
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            raise AnsibleActionFail(
                f"{binary} exited {done.returncode} without a JSON answer: {done.stdout.strip()[:500]!r} {done.stderr.strip()[:500]!r}"
            ) from None
        if not isinstance(answer, dict) or not (answer.get("failed") or isinstance(answer.get("layout"), dict)):
            raise AnsibleActionFail(f"{binary} answered something else than a layout: {done.stdout[:500]!r}")
        return answer
