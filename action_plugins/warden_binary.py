"""Runs a warden binary module built for the target's platform, cached on the target.

Ansible runs a binary module with five remote commands and two uploads per task, the whole
binary every time, and never pipelines it. This action plugin instead:

1. picks the binary built for the target's platform, ``<module>_<system>_<arch>`` (``uname -s
   -m`` once per host, checked to be two plain words and remembered as the fact
   ``warden_platform``; set the variable yourself to skip it). In ``library/`` the builds sit
   next to the module; in the collection, whose ``plugins/modules/<module>.py`` are
   documentation stubs, they are in ``binaries/``. No dots in the names: Ansible's loader
   strips extensions;
2. keeps it on the target as ``<warden_binary_dir>/<module>-<sha256 prefix>`` (default
   ``~/.cache/warden``; with ``become``, the become user's home and uid);
3. runs it with one remote command per task, the args on standard input (the module reads
   ``/dev/stdin`` as its args file). The same command first checks the cached file: the cache
   directory a real directory (not a symlink) of mode 0700 owned by the user running the
   command, the file a regular file owned by that user or root, writable by nobody else, with
   the expected SHA-256 (``sha256 -q`` on FreeBSD, ``sha256sum`` elsewhere). Anything else is
   a cache miss: the binary is uploaded afresh (staged, then renamed into place) and run.

Results, check mode, diff and no_log behave as on the plain path (the same args with the same
``_ansible_*`` keys reach the same binary). ``warden_binary_cache: false`` turns the cache off:
in ``library/`` Ansible then runs ``library/<module>`` itself (uploaded per task, so it must be
the target's platform's build); in the collection the plugin uploads the platform build into
the task's temporary directory, which Ansible removes after the task.

The same file holds what the other warden plugins that talk to the target share (in the
collection it is ``plugins/plugin_utils/warden_binary.py``): the host probe (platform, Bastille
version, which cached binaries are valid, in one remote command of plain sh) and the batch (every
step's cached binary run in order by one remote command, each with its args on its own standard
input, stopping at the first failure), each as one function that builds the remote command and
one that parses its output.

Only ansible-core's action-plugin API is used (``ActionBase`` methods and the public module
JSON profiles of ``ansible.module_utils.common.json``); module results are parsed here rather
than with ``ActionBase._parse_returned_data``, whose return type changed in 2.21. Module-reported
secrets (``_ansible_new_secrets``, ansible-core 2.22+) are handed to the controller's masker
through the public ``ansible.module_utils.secrets.register_secrets`` where it exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.json import (
    Direction,
    get_module_decoder,
    get_module_encoder,
)
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

try:  # ansible-core 2.22+ (lib/ansible/module_utils/secrets.py)
    from ansible.module_utils.secrets import register_secrets
except ImportError:  # 2.19-2.21 have no controller-side masker; the modules do not report secrets to them
    register_secrets = None

display = Display()

CACHE_MISS_RC = 199
CACHE_MISS = "WARDEN_CACHE_MISS"
# One word of `uname -s -m`, or the warden_platform variable: it becomes part of a controller path.
PLATFORM_WORD = re.compile(r"[A-Za-z0-9_]{1,32}")
# Where the collection keeps the per-platform builds (plugins/modules holds the doc stubs).
COLLECTION_BINARIES = "binaries"
# The collection this file is part of ("warden.freebsd"), or "" in the repository's
# action_plugins/ (there the modules are library/'s).
COLLECTION = ".".join(__name__.split(".")[1:3]) if __name__.startswith("ansible_collections.") else ""


@dataclasses.dataclass(frozen=True)
class Step:
    """One module run: the controller's binary, its content hash, where it lives on the target."""

    module: str
    binary: str
    sha256: str
    remote: str
    payload: bytes


def remote_path(path):
    """Quotes a path for sh, keeping a leading ~/ for the shell to expand (as $HOME)."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


# The cache check, in base sh and tools FreeBSD and Linux share (ls -n, id -u; sha256 -q on
# FreeBSD, sha256sum on Linux). Prints the reason and fails when the file may not be run.
CACHE_CHECK = r"""warden_cached() {
  [ -d "$1" ] && [ ! -L "$1" ] || { echo "WARDEN_CACHE_MISS: $1 is not a directory"; return 1; }
  u=$(id -u)
  set -- "$@" $(ls -ldn "$1")
  case $4 in drwx------ | drwx------.) ;; *) echo "WARDEN_CACHE_MISS: $1 has mode $4, not 0700"; return 1 ;; esac
  [ "$6" = "$u" ] || { echo "WARDEN_CACHE_MISS: $1 is owned by uid $6, not $u"; return 1; }
  [ -f "$2" ] && [ ! -L "$2" ] || { echo "WARDEN_CACHE_MISS: $2 is missing or not a regular file"; return 1; }
  set -- "$1" "$2" "$3" $(ls -ln "$2")
  case $4 in
    -??x?-??-? | -??x?-??-?.) ;;
    *) echo "WARDEN_CACHE_MISS: $2 has mode $4 (must be executable by its owner, writable by nobody else)"; return 1 ;;
  esac
  [ "$6" = "$u" ] || [ "$6" = 0 ] || { echo "WARDEN_CACHE_MISS: $2 is owned by uid $6"; return 1; }
  if command -v sha256 >/dev/null 2>&1; then h=$(sha256 -q "$2")
  elif command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum "$2"); h=${h%% *}
  else echo "WARDEN_CACHE_MISS: neither sha256 nor sha256sum on the target"; return 1; fi
  [ "$h" = "$3" ] || { echo "WARDEN_CACHE_MISS: $2 does not have the expected content"; return 1; }
}"""


def build_remote_command(step, env):
    """The one remote command of a task: check the cached binary, then run it (args on stdin)."""
    path = remote_path(step.remote)
    directory = remote_path(step.remote.rsplit("/", 1)[0])
    home = ""
    if step.remote.startswith("~/"):
        home = f'if [ -z "$HOME" ]; then echo "{CACHE_MISS}: HOME is not set"; exit {CACHE_MISS_RC}; fi\n'
    return (
        f"set -f\n{CACHE_CHECK}\n{home}"
        f"if warden_cached {directory} {path} {step.sha256}; then {env} {path} /dev/stdin; else exit {CACHE_MISS_RC}; fi"
    )


def cache_missed(res):
    """The reason the cached binary was not run, or None when it ran."""
    if res.get("rc") != CACHE_MISS_RC:
        return None
    for line in res.get("stdout", "").splitlines():
        if line.startswith(CACHE_MISS + ":"):
            return line.split(":", 1)[1].strip()
    return None


_DIGESTS = {}


def file_sha256(path):
    """SHA-256 of a controller file, remembered for this process (by path, size and mtime)."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as handle:
            _DIGESTS[key] = hashlib.sha256(handle.read()).hexdigest()
    return _DIGESTS[key]


def cached_step(module, binary, cache_dir, payload=b""):
    """The Step of a module binary of the controller: its hash and where the target caches it."""
    digest = file_sha256(binary)
    return Step(module, binary, digest, f"{cache_dir}/{module}-{digest[:20]}", payload)


def check_cache_dir(cache_dir):
    """warden_binary_dir, checked: it becomes part of remote commands."""
    cache_dir = str(cache_dir).rstrip("/")
    if not cache_dir.startswith(("/", "~/")) or any(c in cache_dir for c in "\n\r\0"):
        raise AnsibleActionFail(f"warden_binary_dir must be an absolute path or start with ~/, not {cache_dir!r}")
    return cache_dir


def platform_of(uname):
    """`<system>_<arch>` from `uname -s -m`'s answer, or None when it is not two plain words."""
    words = uname.split()
    if len(words) != 2 or not all(PLATFORM_WORD.fullmatch(w) for w in words):
        return None
    return f"{words[0].lower()}_{words[1]}"


PROBE = "WARDEN_PROBE"


def build_probe_script(candidates, bastille, env):
    """The host probe, plain sh read from standard input: `uname -s -m`; with ``bastille``,
    what `bastille -v` prints (stdout and stderr, as the layout reads it) and its exit status;
    and for each candidate Step (a cached binary of any platform the controller has) whether
    the cache check of the batch would let it run. Nothing on the target changes."""
    lines = ["set -f", CACHE_CHECK, f"printf '\\n{PROBE} platform %s\\n' \"$(uname -s -m 2>&1)\""]
    if bastille:
        lines += [
            # Bounded: timeout(1) is in FreeBSD's base system (and coreutils); without it, unbounded.
            'if command -v timeout >/dev/null 2>&1; then warden_t="timeout 60"; else warden_t=; fi',
            f"warden_v=$({env} $warden_t bastille -v 2>&1 </dev/null)",
            "warden_rc=$?",
            f"printf '{PROBE} bastille %s\\n%s\\n{PROBE} bastille-end\\n' \"$warden_rc\" \"$warden_v\"",
        ]
    checks = []
    for index, step in enumerate(candidates):
        directory = remote_path(step.remote.rsplit("/", 1)[0])
        checks.append(
            f"if warden_r=$(warden_cached {directory} {remote_path(step.remote)} {step.sha256} </dev/null); "
            f"then echo '{PROBE} cache {index} ok'; else echo \"{PROBE} cache {index} miss ${{warden_r#*: }}\"; fi"
        )
    if checks and any(step.remote.startswith("~/") for step in candidates):
        checks = [f'if [ -z "$HOME" ]; then echo "{PROBE} home-unset"; else', *checks, "fi"]
    lines += checks
    lines.append(f"echo '{PROBE} done'")
    return "\n".join(lines) + "\n"


def parse_probe(res, candidates):
    """The probe's answers: {uname, platform, bastille_version, bastille_rc, cache: {index: reason
    or None}}; raises when the probe did not finish."""
    lines = res.get("stdout", "").splitlines()
    if f"{PROBE} done" not in lines:
        raise AnsibleActionFail(
            f"the host probe did not finish (rc {res.get('rc')}): {res.get('stdout', '')[-500:]!r} {res.get('stderr', '')[-500:]!r}"
        )
    out = {"uname": "", "platform": None, "bastille_version": "", "bastille_rc": None, "cache": {}}
    home_unset = f"{PROBE} home-unset" in lines
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(f"{PROBE} platform "):
            out["uname"] = line[len(f"{PROBE} platform "):].strip()
            out["platform"] = platform_of(out["uname"])
        elif line.startswith(f"{PROBE} bastille ") and line != f"{PROBE} bastille-end":
            out["bastille_rc"] = int(line.split()[2])
            end = lines.index(f"{PROBE} bastille-end", i)
            out["bastille_version"] = "\n".join(lines[i + 1:end])
            i = end
        elif line.startswith(f"{PROBE} cache "):
            words = line.split(" ", 4)
            index = int(words[2])
            out["cache"][index] = None if words[3] == "ok" else (words[4] if len(words) > 4 else "missing")
        i += 1
    for index in range(len(candidates)):
        out["cache"].setdefault(index, "HOME is not set" if home_unset else "not checked")
    return out


def build_batch_script(steps, env, nonce):
    """One remote command for many module runs, as plain sh read from standard input: each
    Step's cached binary is checked as the single-task command checks it, then run with its
    args on its own standard input (a here-document, so they travel only over the connection's
    stdin, never on a command line), in order; the first step that fails (non-zero exit) or
    misses the cache ends the script. Each step's output is delimited on stdout and stderr by
    lines `WARDEN_STEP_<nonce> <index> begin|end <rc>|miss <reason>`."""
    mark = f"WARDEN_STEP_{nonce}"
    eof = f"WARDEN_ARGS_{nonce}"
    lines = ["set -f", CACHE_CHECK]
    if any(step.remote.startswith("~/") for step in steps):
        lines.append(f'if [ -z "$HOME" ]; then printf \'\\n{mark} 0 miss HOME is not set\\n\'; exit {CACHE_MISS_RC}; fi')
    for index, step in enumerate(steps):
        payload = step.payload.decode()
        if "\n" in payload:
            raise AnsibleActionFail(f"the args of step {index} ({step.module}) are not one line of JSON")
        path = remote_path(step.remote)
        directory = remote_path(step.remote.rsplit("/", 1)[0])
        lines += [
            f"printf '\\n{mark} {index} begin\\n'; printf '\\n{mark} {index} begin\\n' >&2",
            f"if warden_r=$(warden_cached {directory} {path} {step.sha256} </dev/null); then",
            f"{env} {path} /dev/stdin <<'{eof}'",
            payload,
            eof,
            "warden_rc=$?",
            f"else printf '\\n{mark} {index} miss %s\\n' \"${{warden_r#*: }}\"; exit {CACHE_MISS_RC}; fi",
            f"printf '\\n{mark} {index} end %s\\n' \"$warden_rc\"; printf '\\n{mark} {index} end\\n' >&2",
            '[ "$warden_rc" = 0 ] || exit "$warden_rc"',
        ]
    return "\n".join(lines) + "\n"


def split_batch(res, count, nonce):
    """Each step's own output from a batch's: a list of `count` entries, each None (not run),
    {"miss": reason} (its cached binary failed the check, nothing of it ran) or a remote-command
    result {rc, stdout, stderr} for parse_result. A step whose end mark is missing (the command
    died under it) gets the command's rc and whatever it printed."""
    mark = f"WARDEN_STEP_{nonce} "
    out = [None] * count

    def sections(text):
        found, current = {}, None
        for line in text.splitlines(keepends=True):
            if line.startswith(mark):
                words = line[len(mark):].split(" ", 2)
                index = int(words[0])
                if words[1].strip() == "begin":
                    current = index
                    found[index] = {"text": [], "end": None, "miss": None}
                elif words[1].strip() == "end":
                    found.setdefault(index, {"text": [], "end": None, "miss": None})["end"] = (words[2].strip() if len(words) > 2 else "")
                    current = None
                elif words[1].strip() == "miss":
                    found.setdefault(index, {"text": [], "end": None, "miss": None})["miss"] = words[2].strip() if len(words) > 2 else ""
                    current = None
            elif current is not None:
                found[current]["text"].append(line)
        return found

    stdout, stderr = sections(res.get("stdout", "")), sections(res.get("stderr", ""))
    for index in range(count):
        if index not in stdout:
            continue
        part = stdout[index]
        if part["miss"] is not None:
            out[index] = {"miss": part["miss"]}
            continue
        rc = int(part["end"]) if part["end"] not in (None, "") and part["end"].lstrip("-").isdigit() else res.get("rc")
        err = stderr.get(index, {"text": []})["text"]
        out[index] = {"rc": rc, "stdout": "".join(part["text"]).strip("\n"), "stderr": "".join(err).strip("\n")}
    return out


def new_nonce():
    """Random marks for one batch, so no output of a module can pass for one."""
    return secrets.token_hex(8)


def parse_result(res):
    """The module's result from a remote command's output: one JSON object, legacy profile.

    A result that does not parse becomes a failed task carrying the raw output, as Ansible's
    own module runner reports it. Reserved ``_ansible_*`` keys are not passed on; the secrets a
    module reports (``_ansible_new_secrets``) go to the controller's masker where there is one.
    """
    stdout = res.get("stdout", "")
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("{")), None)
    data, error = None, "no JSON object in the output"
    if start is not None:
        text = "\n".join(lines[start:])
        try:
            data, end = get_module_decoder("legacy", Direction.MODULE_TO_CONTROLLER)().raw_decode(text.lstrip())
        except ValueError as problem:
            error = problem
        else:
            error = None if isinstance(data, dict) else f"the output is a JSON {type(data).__name__}, not an object"
            if text.lstrip()[end:].strip():
                display.warning(f"Module invocation had junk after the JSON data: {text.lstrip()[end:].strip()}")
    if error is not None:
        return {
            "failed": True,
            "msg": f"Module result deserialization failed: {error}. See stdout/stderr for the returned output.",
            "module_stdout": stdout,
            "module_stderr": res.get("stderr", ""),
            "rc": res.get("rc"),
        }
    secrets = data.pop("_ansible_new_secrets", None)
    if secrets and register_secrets is not None:
        register_secrets([str(s) for s in secrets])
    for key in [k for k in data if k.startswith("_ansible_")]:
        display.warning(f"Removed reserved key {key!r} from module result.")
        del data[key]
    return data


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _begin(self, tmp, task_vars, allowed):
        """The start of a run of a plugin built on this one (warden_host_probe,
        warden_agent_plan, warden_agent_run): ActionBase's own, then the task's arguments
        checked against ``allowed``."""
        result = ActionBase.run(self, tmp, task_vars)
        unknown = sorted(set(self._task.args) - set(allowed))
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters: {', '.join(unknown)} (supported: {', '.join(sorted(allowed))})")
        return result

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        module = self._task.action.split(".")[-1]
        resolved = self._resolve_module()
        cache = boolean(self._var(task_vars, "warden_binary_cache", True), strict=False)
        if not cache and not resolved.endswith(".py"):
            # library/: the module is the binary, and Ansible runs it the plain way.
            result.update(self._execute_module(task_vars=task_vars))
            return result

        platform, facts = self._platform(task_vars)
        step = self._step(module, resolved, platform, task_vars)
        env = self._compute_environment_string()
        if cache:
            res = self._low_level_execute_command(build_remote_command(step, env), sudoable=True, in_data=step.payload)
            reason = cache_missed(res)
            if reason is not None:
                display.vvv(f"warden: cache miss on the target ({reason}); uploading {step.binary}")
                self._install(step)
                res = self._low_level_execute_command(build_remote_command(step, env), sudoable=True, in_data=step.payload)
                reason = cache_missed(res)
                if reason is not None:
                    raise AnsibleActionFail(f"the module binary installed on the target fails the cache check: {reason}")
        else:
            res = self._run_uploaded(step, env)

        data = parse_result(res)
        if facts:
            data.setdefault("ansible_facts", {}).update(facts)
        result.update(data)
        return result

    def _var(self, task_vars, name, default):
        """A variable of the task, templated (task_vars hold the raw values)."""
        return self._templar.template(task_vars[name]) if name in task_vars else default

    def _resolve_module(self):
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            self._task.action, collection_list=self._task.collections
        )
        if not found.resolved or not found.plugin_resolved_path:
            raise AnsibleActionFail(f"module {self._task.action} not found")
        return found.plugin_resolved_path

    def _platform(self, task_vars):
        """`<system>_<arch>` of the target, and the fact to remember it by."""
        known = self._var(task_vars, "warden_platform", None)
        if known:
            if not isinstance(known, str) or not re.fullmatch(r"[a-z0-9_]{3,65}", known):
                raise AnsibleActionFail(f"warden_platform must look like freebsd_amd64, not {known!r}")
            return known, {}
        res = self._low_level_execute_command("uname -s -m", sudoable=False)
        words = res.get("stdout", "").split()
        if res.get("rc") != 0 or len(words) != 2 or not all(PLATFORM_WORD.fullmatch(w) for w in words):
            raise AnsibleActionFail(
                f"cannot tell the target's platform: `uname -s -m` said {res.get('stdout', '')!r} {res.get('stderr', '')!r}"
                " (expected two words of letters, digits and _, like `FreeBSD amd64`)"
            )
        platform = f"{words[0].lower()}_{words[1]}"
        return platform, {"warden_platform": platform}

    def _step(self, module, resolved, platform, task_vars):
        binary = self._binary(module, resolved, platform)
        args = self._task.args.copy()
        self._update_module_args(module, args, task_vars)
        return cached_step(module, binary, self._cache_dir(task_vars), self._payload(args))

    def _cache_dir(self, task_vars):
        return check_cache_dir(self._var(task_vars, "warden_binary_dir", "~/.cache/warden"))

    @staticmethod
    def _payload(args):
        """A module's args as it reads them: one line of JSON, Ansible's legacy module profile."""
        return json.dumps(args, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE)).encode()

    def _binary(self, module, resolved, platform):
        directory = os.path.dirname(resolved)
        if resolved.endswith(".py"):  # the collection: plugins/modules/<module>.py is the doc stub
            directory = os.path.join(os.path.dirname(os.path.dirname(directory)), COLLECTION_BINARIES)
        candidate = os.path.join(directory, f"{module}_{platform}")
        if os.path.isfile(candidate):
            return os.path.realpath(candidate)
        raise AnsibleActionFail(
            f"no {module} binary for {platform}: looked for {candidate}. Build the modules for that platform "
            f"(see the README, 'Building for FreeBSD') or set warden_binary_cache: false to use {resolved} as is."
        )

    def _install(self, step):
        """Uploads the binary and moves it into the cache (a fresh 0700 directory if need be)."""
        self._install_many([step])

    def _install_many(self, steps):
        """Uploads binaries and moves them into the cache with one temporary directory and one
        install command: 3 remote commands plus one upload per binary."""
        tmpdir = self._make_tmp_path()
        try:
            staged, installs = [], []
            for n, step in enumerate(steps):
                path = self._connection._shell.join_path(tmpdir, f"warden-binary-{n}")
                self._transfer_file(step.binary, path)
                staged.append(path)
                target = remote_path(step.remote)
                directory = remote_path(step.remote.rsplit("/", 1)[0])
                # A symlink in place of the cache directory is removed (the link, never its target);
                # a directory owned by another user is refused. The copy gets a temporary name, then a
                # rename, so concurrent tasks (forks on one host) never run a half-copied binary; a
                # symlink or directory at the final name is removed first so the rename cannot follow it.
                installs.append(
                    f"d={directory} && f={target} && "
                    'if [ -L "$d" ]; then rm -f "$d"; fi && mkdir -p "$d" && '
                    '{ [ -d "$d" ] && [ ! -L "$d" ] || { echo "$d is not a directory" >&2; exit 1; }; } && '
                    'set -- $(ls -ldn "$d") && '
                    '{ [ "$3" = "$(id -u)" ] || { echo "$d is owned by uid $3, not $(id -u)" >&2; exit 1; }; } && '
                    'chmod 0700 "$d" && rm -f "$f.$$" && '
                    f'cp {shlex.quote(path)} "$f.$$" && chmod 0700 "$f.$$" && '
                    '{ if [ -L "$f" ] || [ -d "$f" ]; then rm -rf "$f"; fi; } && mv -f "$f.$$" "$f"'
                )
            self._fixup_perms2([tmpdir, *staged], execute=False)
            # A cache under ~ with HOME unset (become without a login environment) would land in /.
            home = ('{ [ -n "$HOME" ] || { echo "HOME is not set on the target" >&2; exit 1; }; } && '
                    if any(s.remote.startswith("~") for s in steps) else "")
            res = self._low_level_execute_command("set -f && umask 077 && " + home + " && ".join(installs), sudoable=True)
            if res.get("rc") != 0:
                raise AnsibleActionFail(
                    f"cannot install the module binary in the target's cache {', '.join(s.remote for s in steps)}: "
                    f"{(res.get('stderr', '') or res.get('stdout', '')).strip()}"
                )
            for step in steps:
                display.vvv(f"warden: cached {step.binary} as {step.remote}")
        finally:
            self._remove_tmp_path(tmpdir)

    def _module_name(self, module):
        """A warden module's name as the module loader finds it: in this collection when the
        plugin is the collection's."""
        return f"{COLLECTION}.{module}" if COLLECTION and "." not in module else module

    def _resolve_module_named(self, module):
        """Where a warden module's file is on the controller (library/'s binary, or the
        collection's doc stub)."""
        name = self._module_name(module)
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(name, collection_list=self._task.collections)
        if not found.resolved or not found.plugin_resolved_path:
            raise AnsibleActionFail(f"module {name} not found")
        return found.plugin_resolved_path

    def _module_binary(self, module, platform):
        """The controller's build of a warden module for a platform (found as the plain path's
        module is: the module loader, in this collection when the plugin is the collection's)."""
        return self._binary(module.split(".")[-1], self._resolve_module_named(module), platform)

    def _probe(self, task_vars, modules=(), bastille=True):
        """One remote command (plain sh on standard input): the target's platform, what
        `bastille -v` prints, and whether each module's cached binary would pass the cache
        check. Returns {platform, uname, bastille_version, bastille_rc, cache: {module: reason
        or None}} plus `warden_platform` for ansible_facts."""
        known = self._var(task_vars, "warden_platform", None)
        if known and (not isinstance(known, str) or not re.fullmatch(r"[a-z0-9_]{3,65}", known)):
            raise AnsibleActionFail(f"warden_platform must look like freebsd_amd64, not {known!r}")
        platforms = [known] if known else sorted(self._platforms(modules))
        cache_dir = self._cache_dir(task_vars)
        candidates, owners = [], []
        for module in modules:
            for platform in platforms:
                try:
                    binary = self._module_binary(module, platform)
                except AnsibleActionFail:
                    continue
                candidates.append(cached_step(module, binary, cache_dir))
                owners.append((module, platform))
        script = build_probe_script(candidates, bastille, self._compute_environment_string())
        res = self._low_level_execute_command("/bin/sh -s", sudoable=True, in_data=script.encode())
        found = parse_probe(res, candidates)
        if found["platform"] is None:
            raise AnsibleActionFail(
                f"cannot tell the target's platform: `uname -s -m` said {found['uname']!r}"
                " (expected two words of letters, digits and _, like `FreeBSD amd64`)"
            )
        found["cache"] = {
            module: found["cache"][i] for i, (module, platform) in enumerate(owners) if platform == found["platform"]
        }
        for module in modules:
            found["cache"].setdefault(module, f"no {module} build for {found['platform']} on the controller")
        return found

    def _platforms(self, modules):
        """Every platform some module has a controller build for (the probe checks them all
        when the target's platform is not known yet)."""
        out = set()
        for module in modules:
            name = f"{COLLECTION}.{module}" if COLLECTION else module
            found = self._shared_loader_obj.module_loader.find_plugin_with_context(name, collection_list=self._task.collections)
            if not found.resolved or not found.plugin_resolved_path:
                continue
            directory = os.path.dirname(found.plugin_resolved_path)
            if found.plugin_resolved_path.endswith(".py"):
                directory = os.path.join(os.path.dirname(os.path.dirname(directory)), COLLECTION_BINARIES)
            prefix = f"{module}_"
            for entry in os.listdir(directory) if os.path.isdir(directory) else ():
                rest = entry[len(prefix):]
                if entry.startswith(prefix) and not rest.endswith((".yml", ".py")) and re.fullmatch(r"[a-z0-9]+_[A-Za-z0-9_]+", rest):
                    out.add(rest)
        return out

    def _run_uploaded(self, step, env):
        """warden_binary_cache: false in the collection: upload for this task only, run, remove."""
        tmpdir = self._make_tmp_path()
        try:
            remote = self._connection._shell.join_path(tmpdir, f"AnsiballZ_{step.module}")
            self._transfer_file(step.binary, remote)
            self._fixup_perms2([tmpdir, remote])
            return self._low_level_execute_command(f"{env} {shlex.quote(remote)} /dev/stdin", sudoable=True, in_data=step.payload)
        finally:
            self._remove_tmp_path(tmpdir)
