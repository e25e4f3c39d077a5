"""What holds on every supported ansible-core (make test runs this file on 2.19 and 2.21):
the action plugin uses only ansible-core's public names, module-reported secrets reach the
controller's masker where it has one (2.22+) and are left out where it has none, check mode
never returns `skipped`, and the support matrix is one fact in the README, the pins and
meta/runtime.yml."""

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible.release import __version__ as ANSIBLE_CORE
from conftest import BIN, LIBRARY, REPO, base_args

CORE = tuple(int(p) for p in ANSIBLE_CORE.split(".")[:2])
PLUGIN = REPO / "action_plugins" / "warden_binary.py"
# The names the plugin may import from ansible-core: the action-plugin API and public
# module_utils (ansible.module_utils.secrets exists from 2.22 on, imported where it does).
PUBLIC = {
    "ansible.errors": {"AnsibleActionFail"},
    "ansible.module_utils.common.json": {"Direction", "get_module_decoder", "get_module_encoder"},
    "ansible.module_utils.parsing.convert_bool": {"boolean"},
    "ansible.module_utils.secrets": {"register_secrets"},
    "ansible.plugins.action": {"ActionBase"},
    "ansible.utils.display": {"Display"},
}


def load_plugin():
    spec = importlib.util.spec_from_file_location("warden_binary_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_action_plugin_imports_only_public_ansible_core_names():
    """Regression: the plugin imported `remove_internal_keys` from ansible.vars.clean, which
    ansible-core 2.21 removed (agent.yml failed with an import error)."""
    imported = {}
    for node in ast.walk(ast.parse(PLUGIN.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ansible"):
            imported.setdefault(node.module, set()).update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("ansible") for alias in node.names), ast.dump(node)
    for module, names in imported.items():
        assert names <= PUBLIC.get(module, set()), f"{module}: {names}"
        assert "_internal" not in module and ".vars." not in module
    load_plugin()  # and it imports on this ansible-core


@pytest.fixture
def plugin():
    return load_plugin()


def test_module_result_parsing(plugin):
    res = {"rc": 0, "stdout": 'motd line\n{"changed": true, "failed": false, "msg": "ok"}\n', "stderr": ""}
    assert plugin.parse_result(res) == {"changed": True, "failed": False, "msg": "ok"}
    broken = plugin.parse_result({"rc": 1, "stdout": "Segmentation fault\n", "stderr": "core dumped"})
    assert broken["failed"] is True and "deserialization failed" in broken["msg"]
    assert (broken["module_stdout"], broken["module_stderr"], broken["rc"]) == ("Segmentation fault\n", "core dumped", 1)
    assert plugin.parse_result({"rc": 0, "stdout": '["not", "an", "object"]', "stderr": ""})["failed"] is True
    # Trailing junk is warned about and ignored, as Ansible's own module runner does.
    assert plugin.parse_result({"rc": 0, "stdout": '{"changed": false}\nlogout\n', "stderr": ""}) == {"changed": False}


def test_reported_secrets_go_to_the_masker_where_there_is_one(plugin, monkeypatch):
    out = {"rc": 0, "stdout": json.dumps({"changed": False, "_ansible_new_secrets": ["s3cret", "other"]}), "stderr": ""}
    registered = []
    monkeypatch.setattr(plugin, "register_secrets", registered.extend)  # ansible-core 2.22+
    assert plugin.parse_result(out) == {"changed": False}
    assert registered == ["s3cret", "other"]
    monkeypatch.setattr(plugin, "register_secrets", None)  # 2.19-2.21: no masker, key dropped
    assert plugin.parse_result(out) == {"changed": False}
    # The plugin binds the public function exactly where ansible-core has it.
    try:
        from ansible.module_utils.secrets import register_secrets
    except ImportError:
        assert CORE < (2, 22) and load_plugin().register_secrets is None
    else:
        assert load_plugin().register_secrets is register_secrets


class Host:
    """base_args' view of a fresh sandbox host."""

    def __init__(self, sandbox):
        self.box = sandbox
        self.root = sandbox.root()
        self.pg = dict(line.split("=", 1) for line in (sandbox.path / "pg" / "env").read_text().split())
        self.env = {**sandbox.env(), "PATH": f"{sandbox.path / 'bin'}:{os.environ['PATH']}", "WARDEN_SIM_ROOT": str(self.root)}

    def p(self, path):
        return f"{self.root}{path}"

    def run(self, module, args):
        path = self.box.path / f"{module}.args.json"
        path.write_text(json.dumps(args))
        done = subprocess.run([LIBRARY / module, path], env=self.env, capture_output=True, text=True, check=False)
        return json.loads(done.stdout)


MODULES = ["warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"]


@pytest.mark.parametrize("version", ["2.19.14", "2.21.5", "2.22.0"])
def test_check_mode_never_returns_skipped_and_secrets_are_reported_from_2_22(sandbox, version):
    """Check mode predicts (changed true or false), it never skips: ansible-core 2.22 slates
    `skipped` from modules for deprecation. Secrets (the no_log values) are in the result's
    _ansible_new_secrets only for a controller that takes the key."""
    host = Host(sandbox)
    secrets = {"warden_db": {"Nova-pw-1", host.pg["PGPASSWORD"]}, "warden_env": {"env-secret-1"}}
    before = sandbox.snapshot()
    for module in MODULES:
        args = base_args(host, module)
        if module == "warden_env":
            args["secret_values"] = {"WARDEN_DB_PASSWORD": "env-secret-1"}
        if module == "bastille_jail":
            args["bootstrap"] = True  # a fresh host has no release yet
        args.update(_ansible_check_mode=True, _ansible_diff=True, _ansible_version=version)
        result = host.run(module, args)
        assert "skipped" not in result, (module, result)
        assert result.get("failed") is False and isinstance(result.get("changed"), bool), (module, result)
        reported = set(result.get("_ansible_new_secrets", []))
        assert reported == (secrets.get(module, set()) if version >= "2.22" else set()), (module, reported)
    assert sandbox.snapshot() == before


def test_modules_report_secrets_without_a_warning_on_this_ansible_core(tmp_path):
    """Through the action plugin, on the ansible-core running the tests: no 'Removed reserved
    key' warning (2.19-2.21 would print one for _ansible_new_secrets), and from 2.22 the
    controller masks the secret in output the module never made."""
    canary = "Canary-Env-Secret-42"
    playbook = tmp_path / "secret.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "A secret through warden_env", "hosts": "localhost", "gather_facts": False,
        "vars": {"canary": canary},
        "tasks": [
            {"name": "Write it", "warden_env": {"path": str(tmp_path / "agent.env"), "secret_values": {"TOKEN": "{{ canary }}"}}},
            {"name": "Show it", "ansible.builtin.debug": {"msg": "token {{ canary }}"}},
        ],
    }], sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run([BIN / "ansible-playbook", "-i", "localhost,", "-c", "local", playbook, "-e", f"warden_binary_dir={tmp_path}/cache"],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Removed reserved key" not in out and "_ansible_new_secrets" not in out, out
    assert f"TOKEN={canary}" in (tmp_path / "agent.env").read_text()
    if CORE >= (2, 22):
        assert canary not in out, out
    else:
        assert f"token {canary}" in out, out  # no controller-side masker before 2.22


def test_support_matrix_is_one_fact():
    """README's matrix, the pinned venvs make test uses, and meta/runtime.yml agree."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Supported ansible-core"):]
    section = section[: section.index("\n## ", 4)]
    tested = re.findall(r"^\| ansible-core (\d+\.\d+\.\d+) \| Python (\d+\.\d+) \| tested", section, re.MULTILINE)
    pins = {}
    for name in ("requirements.txt", "requirements-2.21.txt"):
        (pin,) = re.findall(r"^ansible-core==(\S+)$", (REPO / name).read_text(), re.MULTILINE)
        pins[name] = pin
    assert sorted(v for v, _ in tested) == sorted(pins.values()), (tested, pins)
    oldest = min(tested, key=lambda t: tuple(map(int, t[0].split("."))))[0]
    runtime = yaml.safe_load((REPO / "collection" / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">={}.0".format(".".join(oldest.split(".")[:2]))
    assert ANSIBLE_CORE in pins.values(), f"tests run on ansible-core {ANSIBLE_CORE}, which the matrix does not list"
