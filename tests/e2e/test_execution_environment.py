"""The execution environment for AWX / Ansible Automation Platform: ansible-builder makes the
build context from collection/ee/execution-environment.yml, the collection installs from it as
the image's galaxy stage installs it, and the context's own introspection finds the
requirements the collection declares in meta/execution-environment.yml."""

import shutil
import subprocess

import pytest
import yaml
from conftest import BIN, REPO

EE = REPO / "collection" / "ee"


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The EE definition in a copy of the repository's layout, with a freshly built tarball."""
    top = tmp_path_factory.mktemp("ee")
    shutil.copytree(EE, top / "collection" / "ee")
    done = subprocess.run([REPO / "bin" / "build-collection", top / "build"], env={"PATH": f"{BIN}:/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [BIN / "ansible-builder", "create", "-f", "collection/ee/execution-environment.yml", "-c", "context",
         "--output-filename", "Containerfile"],
        cwd=top, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return top


def test_build_context_installs_ansible_core_of_the_matrix_and_the_collection(context):
    version = yaml.safe_load((REPO / "collection" / "galaxy.yml").read_text())["version"]
    containerfile = (context / "context" / "Containerfile").read_text()
    definition = yaml.safe_load((EE / "execution-environment.yml").read_text())
    core = definition["dependencies"]["ansible_core"]["package_pip"]
    assert core == "ansible-core==" + next(
        line.split("==")[1] for line in (REPO / "requirements-2.21.txt").read_text().splitlines() if line.startswith("ansible-core==")
    )
    assert f'ARG ANSIBLE_INSTALL_REFS="{core} ' in containerfile
    assert "ansible-galaxy collection install" in containerfile and "introspect" in containerfile
    build = context / "context" / "_build"
    tarball = f"warden-freebsd-{version}.tar.gz"
    assert (build / "collections" / tarball).read_bytes() == (context / "build" / tarball).read_bytes()
    requirements = yaml.safe_load((build / "requirements.yml").read_text())
    assert requirements["collections"] == [{"name": f"collections/{tarball}", "type": "file"}]


def test_collection_requirements_reach_the_image(context, tmp_path):
    """What the image's galaxy and builder stages do, without a container: install the
    collections from _build (its working directory), then run the context's introspect.py."""
    build = context / "context" / "_build"
    done = subprocess.run([BIN / "ansible-galaxy", "collection", "install", "-r", "requirements.yml", "-p", tmp_path / "c"],
                          cwd=build, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "c" / "ansible_collections" / "warden" / "freebsd" / "meta" / "execution-environment.yml").is_file()
    done = subprocess.run(
        [BIN / "python", build / "scripts" / "introspect.py", "introspect", tmp_path / "c",
         f"--write-bindep={tmp_path}/bindep.txt", f"--write-pip={tmp_path}/requirements.txt"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = yaml.safe_load(done.stdout)
    assert found["python"] == []  # the collection's plugins need nothing beyond ansible-core
    assert found["system"] == [
        "openssh-clients [platform:rpm]  # from collection warden.freebsd",
        "openssh-client [platform:dpkg]  # from collection warden.freebsd",
    ]
    assert "openssh-client [platform:dpkg]" in (tmp_path / "bindep.txt").read_text()
