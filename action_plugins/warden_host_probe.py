"""Asks a warden host, in one remote command of plain sh, what the plays need from it.

Answers: the target's platform (``uname -s -m``, checked and kept as the fact
``warden_platform``), what ``bastille -v`` prints (stdout and stderr, the layout reads the
version from it) and its exit status, and for each module named in ``modules`` whether its
cached binary would pass the binary cache's check (see warden_binary.py). Nothing changes on
the target, in check mode or not. When the platform is known (the ``warden_platform``
variable) and neither Bastille nor any cache is asked about, no command is run at all.

The ``warden_agent`` role runs it in place of a ``script`` task (six remote operations: home
directory, temporary directory, upload, chmod, run, remove). ``warden_agent_plan`` runs the
same probe itself.
"""

from __future__ import annotations

import sys  # WARDEN_SHARED_LOADER

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.loader import action_loader  # WARDEN_SHARED_LOADER

# The shared code in this directory; the collection's copy imports it from plugins/plugin_utils
# (bin/build-collection rewrites the WARDEN_SHARED lines).
warden_binary = sys.modules[action_loader.get("warden_binary", class_only=True).__module__]  # WARDEN_SHARED plugin_utils

ARGS = {"modules", "bastille"}


class ActionModule(warden_binary.ActionModule):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = self._begin(tmp, task_vars, ARGS)
        modules = self._task.args.get("modules") or []
        if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
            raise AnsibleActionFail(f"modules must be a list of module names, not {modules!r}")
        bastille = boolean(self._task.args.get("bastille", True), strict=True)
        known = self._var(task_vars, "warden_platform", None)
        if known and not bastille and not modules:
            result.update(changed=False, platform=known, bastille_version="", bastille_rc=None, cache={}, probed=False)
            return result
        found = self._probe(task_vars, modules=modules, bastille=bastille)
        result.update(
            changed=False,
            probed=True,
            platform=found["platform"],
            bastille_version=found["bastille_version"],
            bastille_rc=found["bastille_rc"],
            cache={m: reason is None for m, reason in found["cache"].items()},
            ansible_facts={"warden_platform": found["platform"]},
        )
        return result
