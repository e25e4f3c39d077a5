"""The warden.freebsd collection tarball, installed into a fresh playbook directory that knows
nothing of this repository, provisions an agent through its roles by FQCN."""

import shutil
import subprocess
import tarfile

import pytest

from conftest import BIN, REPO

ROLES = ["warden_agent", "warden_network", "warden_pf", "warden_jails", "warden_db", "warden_env", "warden_service"]
MODULES = ["warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"]


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    done = subprocess.run(
        [REPO / "bin" / "build-collection", out],
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("warden-freebsd-*.tar.gz")
    return path


def test_tarball_carries_every_module_with_docs_and_plugins(tarball):
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for module in MODULES:
        assert f"plugins/modules/{module}" in names
        assert f"plugins/modules/{module}.yml" in names
        assert f"plugins/action/{module}.py" in names
        assert any(n.startswith(f"plugins/modules/{module}_linux_") for n in names), module
    assert {"meta/runtime.yml", "MANIFEST.json", "FILES.json", "plugins/action/warden_binary.py"} <= names
    # The agent layout: its action plugin and the controller binary it runs.
    assert "plugins/action/warden_agent_layout.py" in names
    assert any(n.startswith("controller/warden_layout_linux_") for n in names), sorted(names)
    assert {"plugins/callback/warden_drift.py", "playbooks/agent.yml", "changelogs/fragments/0001-foundation.yml"} <= names
    for role in ROLES:
        assert f"roles/{role}/tasks/main.yml" in names


@pytest.fixture
def project(tmp_path, tarball, sandbox):
    """A playbook directory with the collection installed and nothing else of the repository."""
    dest = tmp_path / "project"
    (dest / "inventory").mkdir(parents=True)
    shutil.copy(REPO / "inventory" / "sandbox.yml", dest / "inventory" / "hosts.yml")
    (dest / "ansible.cfg").write_text(
        "[defaults]\ncollections_path = ./collections\ninventory = ./inventory/hosts.yml\n"
        "retry_files_enabled = False\nnocows = True\ncallbacks_enabled = warden.freebsd.warden_drift\n"
    )
    roles = "".join(f"    - role: warden.freebsd.{role}\n" for role in ROLES)
    (dest / "site.yml").write_text(
        "---\n- name: Provision an agent with the installed collection\n  hosts: warden\n  gather_facts: false\n"
        '  environment: "{{ warden_environment }}"\n  vars:\n    agent_name: mevy\n  roles:\n' + roles
    )
    done = subprocess.run(
        [BIN / "ansible-galaxy", "collection", "install", "-p", dest / "collections", tarball],
        cwd=dest,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


def run_in(project, sandbox, *args):
    env = sandbox.env()
    env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    done = subprocess.run([BIN / "ansible-playbook", *map(str, args)], cwd=project, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def test_fresh_project_runs_the_roles_by_fqcn(project, sandbox):
    cache = project / "cache"
    rc, out = run_in(project, sandbox, "site.yml", "-e", f"warden_binary_dir={cache}")
    assert rc == 0, out
    root = sandbox.root()
    assert "10.0.1.1" in sandbox.tool("ifconfig", "warden0").stdout
    assert (root / "usr/local/etc/rc.d/mevy").is_file()
    assert "mevy is running" in sandbox.tool("service", "mevy", "status").stdout
    assert "AGENT_NAME=mevy" in (root / "home/mevy/.env").read_text()
    # The collection's action plugin ran every module from the cache.
    assert {p.name.rsplit("-", 1)[0] for p in cache.iterdir()} == set(MODULES)

    rc, out = run_in(project, sandbox, "site.yml", "-e", f"warden_binary_dir={cache}")
    assert rc == 0, out
    assert "changed=0" in out and "failed=0" in out, out


def test_fresh_project_runs_the_collection_playbook(project, sandbox):
    # Without warden_secrets_dir the default would put generated passwords inside the
    # installed collection (the playbook's directory): refused before any change.
    hosts = project / "inventory" / "hosts.yml"
    inventory = hosts.read_text()
    hosts.write_text("\n".join(line for line in inventory.splitlines() if "warden_secrets_dir:" not in line) + "\n")
    before = sandbox.snapshot()
    rc, out = run_in(project, sandbox, "warden.freebsd.agent", "-e", "agent_name=clawdie")
    assert rc != 0 and "inside an installed collection" in out, out
    assert sandbox.snapshot() == before
    hosts.write_text(inventory)

    rc, out = run_in(project, sandbox, "warden.freebsd.agent", "-e", "agent_name=clawdie")
    assert rc == 0, out
    assert "10.0.0.1" in sandbox.tool("ifconfig", "warden0").stdout
    assert "clawdie is running" in sandbox.tool("service", "clawdie", "status").stdout


def test_module_docs_resolve_by_fqcn(project):
    env = {"ANSIBLE_CONFIG": str(project / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin"}
    for module in MODULES:
        done = subprocess.run([BIN / "ansible-doc", f"warden.freebsd.{module}"], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0 and module in done.stdout, done.stderr
