"""The agent layout through its action plugin (warden_agent_layout): every problem of an
agent's settings at once and before any change, the controller binary's absence explained
with the command that builds it, and a db_password that never reaches the binary."""

import importlib.util
import json
from pathlib import Path

import pytest
from conftest import REPO


def load_plugin():
    spec = importlib.util.spec_from_file_location("warden_agent_layout", REPO / "action_plugins" / "warden_agent_layout.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def test_every_problem_of_an_agents_settings_comes_at_once_before_any_change(sandbox):
    before = sandbox.snapshot()
    agents = {
        "mevy": {"subnet_base": "8.8.8", "system_locale": "sl_SI.utf8", "subnet_bsae": "10.0.1",
                 "jails": {"ollama": True, "llama_cpp": True, "redis": True}},
        "clawdie": {"subnet_base": "10.0.0"},
    }
    rc, out, _ = sandbox.playbook("playbooks/agent.yml", "-e", json.dumps({"warden_agents": agents, "agent_name": "mevy"}))
    assert rc != 0, out
    for needle in [
        "agent mevy: ",
        "unknown setting 'subnet_bsae'",
        "subnet_base 8.8.8 is not in a private range",
        "jails: unknown jail kind 'redis'",
        "the ollama and llama.cpp jails would both take 8.8.8.4",
        "FreeBSD spells it sl_SI.UTF-8",
    ]:
        assert needle in out, (needle, out)
    # The layout failed on the controller: nothing after it ran.
    assert "warden_network" not in out, out
    assert sandbox.snapshot() == before


def test_a_missing_controller_binary_says_how_to_build_it(tmp_path, monkeypatch):
    plugin = load_plugin()
    monkeypatch.setattr(plugin, "SEARCH", [str(tmp_path / "library"), str(tmp_path / "controller")])
    action = plugin.ActionModule.__new__(plugin.ActionModule)
    with pytest.raises(Exception) as err:
        action._binary({})
    msg = str(err.value)
    name = f"warden_layout_{plugin.controller_platform()}"
    assert f"the controller binary {name}" in msg and "is missing" in msg, msg
    assert "`make library`" in msg and "`cargo build --release -p warden_layout`" in msg, msg
    assert str(tmp_path / "library" / name) in msg and "warden_layout_binary" in msg, msg
    with pytest.raises(Exception) as err:
        action._binary({"warden_layout_binary": str(tmp_path / "nope")})
    assert "is not an executable file" in str(err.value)


def test_the_repositorys_binary_is_found_where_make_library_puts_it():
    plugin = load_plugin()
    action = plugin.ActionModule.__new__(plugin.ActionModule)
    found = Path(action._binary({}))
    assert found == (REPO / "library" / f"warden_layout_{plugin.controller_platform()}").resolve()


def test_a_db_password_never_reaches_the_binary():
    plugin = load_plugin()
    args = {"agents": {"mevy": {"subnet_base": "10.0.1", "db_password": "canary-$'\""}, "other": None}}
    scrubbed = plugin.ActionModule._scrubbed(dict(args))
    assert scrubbed["agents"]["mevy"] == {"subnet_base": "10.0.1", "db_password": True}
    assert scrubbed["agents"]["other"] is None
    assert "canary" not in json.dumps(scrubbed)
