"""The warden.freebsd collection tarball, installed into a fresh playbook directory that knows
nothing of this repository, provisions an agent through its roles by FQCN."""

import ast
import json
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml
from conftest import BIN, REPO, assert_reboot_keeps_state

ROLES = ["warden_agent", "warden_network", "warden_pf", "warden_jails", "warden_db", "warden_env", "warden_service"]
# Every binary module of the repository (its sidecar library/<module>.yml), and those an agent's play runs.
PLATFORM_BUILD = re.compile(r"_(linux|freebsd|darwin|netbsd|openbsd)_[a-z0-9_]+$")
MODULES = sorted(p.stem for p in (REPO / "library").glob("*.yml") if not PLATFORM_BUILD.search(p.stem))
AGENT_MODULES = {"warden_bridge_alias", "warden_pf_net", "bastille_jail", "warden_db", "warden_env", "warden_rcd"}
# Action plugins that run on the controller only, documented by a sidecar next to them.
CONTROLLER_PLUGINS = sorted(p.stem for p in (REPO / "action_plugins").glob("*.yml"))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("collection")
    done = subprocess.run(
        [REPO / "bin" / "build-collection", out],
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
        capture_output=True,
        text=True, check=False)
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("warden-freebsd-*.tar.gz")
    return path


def test_tarball_carries_every_module_with_docs_and_plugins(tarball):
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        modes = {m.name: m.mode for m in tar.getmembers()}
    for module in MODULES:
        # A documentation stub where ansible-doc lists modules; the binaries beside, per platform.
        assert f"plugins/modules/{module}.py" in names
        assert f"plugins/modules/{module}" not in names
        assert f"plugins/action/{module}.py" in names
        linux = [n for n in names if n.startswith(f"binaries/{module}_linux_")]
        assert linux and all(modes[n] & 0o111 for n in linux), module
    assert not [n for n in names if n.startswith("plugins/modules/") and not n.endswith(".py") and n != "plugins/modules"]
    assert "plugins/action/warden_binary.py" not in names  # an action plugin must have a module of its name
    assert {"meta/runtime.yml", "MANIFEST.json", "FILES.json", "plugins/plugin_utils/warden_binary.py"} <= names
    # The agent layout: its action plugin, its doc stub and the controller binary it runs.
    # The action plugins without a module (the layout; the host probe, the agent plan and its run):
    # each a shim with a doc stub of its name, the code in plugin_utils.
    assert CONTROLLER_PLUGINS == ["warden_agent_layout", "warden_agent_plan", "warden_agent_run", "warden_host_probe"]
    for plugin in CONTROLLER_PLUGINS:
        assert {f"plugins/action/{plugin}.py", f"plugins/modules/{plugin}.py", f"plugins/plugin_utils/{plugin}.py"} <= names
    assert any(n.startswith("controller/warden_layout_linux_") for n in names), sorted(names)
    assert {"plugins/callback/warden_drift.py", "playbooks/agent.yml", "changelogs/fragments/0001-foundation.yml"} <= names
    assert {"meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt"} <= names
    assert {"CHANGELOG.md", "changelogs/changelog.yaml", "changelogs/config.yaml", "tests/sanity/ignore-2.19.txt"} <= names
    for role in ROLES:
        assert f"roles/{role}/tasks/main.yml" in names


def test_doc_stubs_are_generated_from_the_sidecars(tarball, tmp_path):
    """library/<module>.yml stays the one source of each module's docs."""
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    for module in [*MODULES, *CONTROLLER_PLUGINS]:
        stub = ast.parse((tmp_path / "plugins" / "modules" / f"{module}.py").read_text())
        values = {node.targets[0].id: node.value.value for node in stub.body if isinstance(node, ast.Assign)}
        source = "action_plugins" if module in CONTROLLER_PLUGINS else "library"
        sidecar = yaml.safe_load((REPO / source / f"{module}.yml").read_text())
        assert yaml.safe_load(values["DOCUMENTATION"]) == sidecar["DOCUMENTATION"], module
        assert yaml.safe_load(values["RETURN"]) == sidecar["RETURN"], module
        assert yaml.safe_load(values["EXAMPLES"]) == yaml.safe_load(sidecar["EXAMPLES"]), module


def test_changelog_is_made_from_the_fragments(tarball, tmp_path):
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    version = yaml.safe_load((REPO / "collection" / "galaxy.yml").read_text())["version"]
    history = yaml.safe_load((tmp_path / "changelogs" / "changelog.yaml").read_text())
    taken = {f for release in history["releases"].values() for f in release.get("fragments", [])}
    assert taken == {p.name for p in (REPO / "changelogs" / "fragments").glob("*.yml")}
    assert version in history["releases"]
    text = (tmp_path / "CHANGELOG.md").read_text()
    assert f"v{version}".replace(".", "\\.") in text


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tarball):
    """The tarball installed with ansible-galaxy, once per test module."""
    dest = tmp_path_factory.mktemp("installed") / "collections"
    done = subprocess.run([BIN / "ansible-galaxy", "collection", "install", "-p", dest, tarball],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


def make_project(dest, installed):
    """A playbook directory with the collection installed and nothing else of the repository."""
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
    shutil.copytree(installed, dest / "collections", symlinks=True)
    return dest


@pytest.fixture
def project(tmp_path, installed, sandbox):
    return make_project(tmp_path / "project", installed)


@pytest.fixture(scope="module")
def docs_project(tmp_path_factory, installed):
    """The same without a simulated host, for ansible-doc."""
    return make_project(tmp_path_factory.mktemp("docs") / "project", installed)


def run_in(project, sandbox, *args):
    env = sandbox.env()
    env["ANSIBLE_CONFIG"] = str(project / "ansible.cfg")
    done = subprocess.run([BIN / "ansible-playbook", *map(str, args)], cwd=project, env=env, capture_output=True, text=True, check=False)
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
    assert {p.name.rsplit("-", 1)[0] for p in cache.iterdir()} == AGENT_MODULES

    rc, out = run_in(project, sandbox, "site.yml", "-e", f"warden_binary_dir={cache}")
    assert rc == 0, out
    assert "changed=0" in out and "failed=0" in out, out
    assert_reboot_keeps_state(sandbox)


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
    assert_reboot_keeps_state(sandbox)


def ansible_doc(project, *args):
    env = {"ANSIBLE_CONFIG": str(project / "ansible.cfg"), "PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([BIN / "ansible-doc", *args], cwd=project, env=env, capture_output=True, text=True, check=False)


def test_module_docs_resolve_by_fqcn(docs_project):
    for module in MODULES:
        done = ansible_doc(docs_project, f"warden.freebsd.{module}")
        assert done.returncode == 0 and module in done.stdout, done.stderr
        assert "OPTIONS" in done.stdout and "EXAMPLES" in done.stdout, done.stdout


def short_descriptions(kind, directory):
    """What each plugin of the repository says about itself."""
    if kind == "module":
        return {p.stem: yaml.safe_load(p.read_text())["DOCUMENTATION"]["short_description"]
                for p in [*(REPO / "library").glob("*.yml"), *(REPO / "action_plugins").glob("*.yml")]
                if p.stem in MODULES or p.stem in CONTROLLER_PLUGINS}
    out = {}
    for path in (REPO / directory).glob("*.py") if (REPO / directory).is_dir() else []:
        tree = ast.parse(path.read_text())
        doc = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "DOCUMENTATION")
        out[path.stem] = yaml.safe_load(doc)["short_description"]
    return out


@pytest.mark.parametrize("kind, directory", [("module", "library"), ("callback", "callback_plugins"), ("inventory", "inventory_plugins")])
def test_ansible_doc_lists_every_plugin_with_its_short_description(docs_project, kind, directory):
    """ansible-doc -l reads each plugin file for its description and skips (with a warning) a
    binary it cannot decode; the collection's stubs and plugins are all listed, cleanly."""
    done = ansible_doc(docs_project, "-t", kind, "-l", "warden.freebsd")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    assert done.stdout.count("warden.freebsd.") == len(short_descriptions(kind, directory)), done.stdout
    done = ansible_doc(docs_project, "-t", kind, "-l", "--json", "warden.freebsd")
    listed = {name: " ".join(d.split()) for name, d in json.loads(done.stdout).items()}
    expected = {f"warden.freebsd.{name}": " ".join(d.split()) for name, d in short_descriptions(kind, directory).items()}
    assert listed == expected


def test_plain_path_without_the_cache_in_the_collection(project, sandbox, tmp_path):
    """warden_binary_cache: false keeps nothing on the target: the platform build is uploaded
    for the task into its temporary directory, which Ansible removes."""
    cache = tmp_path / "cache"
    rc, out = run_in(project, sandbox, "warden.freebsd.agent", "-e", "agent_name=mevy", "--tags", "network",
                     "-e", f"warden_binary_dir={cache}", "-e", "warden_binary_cache=false", "-vvv")
    assert rc == 0, out
    assert "10.0.1.1" in sandbox.tool("ifconfig", "warden0").stdout
    assert "AnsiballZ_warden_bridge_alias" in out and not cache.exists()
