"""Runs a warden binary module built for the target's platform, cached on the target.

Ansible runs a binary module with five remote commands and two uploads per task, the whole
binary every time, and never pipelines it. This action plugin instead:

1. picks the binary built for the target's platform: ``<module>_<system>_<arch>`` next to the
   module (``uname -s -m`` once per host, remembered as the fact ``warden_platform``; set the
   variable yourself to skip it). Ansible's loader strips extensions, so no dots in the names;
2. keeps it on the target under a content-hash path (``<warden_binary_dir>/<module>-<sha256>``,
   default ``~/.cache/warden``) and uploads it only when that path is missing;
3. runs it with one remote command per task, the args arriving on standard input
   (the module reads ``/dev/stdin`` as its args file), so no args file is uploaded.

Results, check mode, diff and no_log behave as on the plain path (the same args with the same
``_ansible_*`` keys reach the same binary). ``warden_binary_cache: false`` falls back to the
plain path (``library/<module>``, uploaded per task).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.vars.clean import remove_internal_keys

try:  # ansible-core 2.19+: tagged values need the module profile's encoder
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:  # pragma: no cover - older ansible-core
    Direction = get_module_encoder = None

display = Display()

MISSING = 199  # the cached binary is not on the target yet


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        if not boolean(task_vars.get("warden_binary_cache", True), strict=False):
            result.update(self._execute_module(task_vars=task_vars))
            return result

        module = self._task.action.split(".")[-1]
        platform, facts = self._platform(task_vars)
        binary = self._binary(module, platform)
        with open(binary, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()[:20]
        cache_dir = task_vars.get("warden_binary_dir", "~/.cache/warden")
        remote = f"{cache_dir.rstrip('/')}/{module}-{digest}"

        args = self._task.args.copy()
        self._update_module_args(module, args, task_vars)
        if get_module_encoder is not None:
            payload = json.dumps(args, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE))
        else:  # pragma: no cover
            payload = json.dumps(args)

        res = self._run_cached(remote, payload)
        if res["rc"] == MISSING and "WARDEN_BINARY_MISSING" in res.get("stdout", ""):
            self._upload(binary, remote)
            res = self._run_cached(remote, payload)

        try:
            data = self._parse_returned_data(res, "legacy")
        except TypeError:  # pragma: no cover - ansible-core < 2.19 takes no profile
            data = self._parse_returned_data(res)
        remove_internal_keys(data)
        if facts:
            data.setdefault("ansible_facts", {}).update(facts)
        result.update(data)
        return result

    def _platform(self, task_vars):
        """`<system>_<arch>` of the target, and the fact to remember it by."""
        known = task_vars.get("warden_platform")
        if known:
            return known, {}
        res = self._low_level_execute_command("uname -s -m", sudoable=False)
        words = res.get("stdout", "").split()
        if res.get("rc") != 0 or len(words) != 2:
            raise AnsibleActionFail(f"cannot tell the target's platform: `uname -s -m` said {res.get('stdout', '')!r} {res.get('stderr', '')!r}")
        platform = f"{words[0].lower()}_{words[1]}"
        return platform, {"warden_platform": platform}

    def _binary(self, module, platform):
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            self._task.action, collection_list=self._task.collections
        )
        if not found.resolved or not found.plugin_resolved_path:
            raise AnsibleActionFail(f"module {self._task.action} not found")
        directory = os.path.dirname(found.plugin_resolved_path)
        candidate = os.path.join(directory, f"{module}_{platform}")
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
        raise AnsibleActionFail(
            f"no {module} binary for {platform}: looked for {candidate}. Build the modules for that platform "
            f"(see the README, 'Building for FreeBSD') or set warden_binary_cache: false to use {found.plugin_resolved_path} as is."
        )

    def _run_cached(self, remote, payload):
        env = self._compute_environment_string()
        quoted = self._remote_path(remote)
        cmd = f"if [ -x {quoted} ]; then {env} {quoted} /dev/stdin; else echo WARDEN_BINARY_MISSING; exit {MISSING}; fi"
        return self._low_level_execute_command(cmd, sudoable=True, in_data=payload.encode())

    def _remote_path(self, path):
        """Quotes a path for sh, keeping a leading ~ for the shell to expand."""
        if path.startswith("~/"):
            return '"$HOME"/' + shlex.quote(path[2:])
        return shlex.quote(path)

    def _upload(self, binary, remote):
        tmpdir = self._make_tmp_path()
        try:
            staged = self._connection._shell.join_path(tmpdir, "warden-binary")
            self._transfer_file(binary, staged)
            target = self._remote_path(remote)
            directory = self._remote_path(remote.rsplit("/", 1)[0])
            # A temporary name in the cache directory, then rename: concurrent tasks (forks on
            # one host) never run a half-copied binary.
            cmd = (
                f"umask 077 && mkdir -p {directory} && cp {shlex.quote(staged)} {target}.$$ "
                f"&& chmod 0700 {target}.$$ && mv -f {target}.$$ {target}"
            )
            res = self._low_level_execute_command(cmd, sudoable=True)
            if res.get("rc") != 0:
                raise AnsibleActionFail(f"cannot install the module binary on the target: {res.get('stderr', '').strip()}")
            display.vvv(f"warden: cached {binary} as {remote}")
        finally:
            self._remove_tmp_path(tmpdir)
