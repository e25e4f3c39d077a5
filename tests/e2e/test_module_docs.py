"""The sidecar docs in library/ stay true to the binaries they describe."""

import json
import os
import re
import subprocess
import tempfile

import pytest
import yaml
from conftest import BIN, REPO

MODULES = sorted(p.stem for p in (REPO / "library").glob("*.yml"))


def supported_parameters(module):
    """Asks the binary itself: an unknown parameter makes it list the supported ones."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as args:
        json.dump({"warden_docs_probe": 1}, args)
        args.flush()
        out = subprocess.run([REPO / "library" / module, args.name], capture_output=True, text=True, check=False)
    msg = json.loads(out.stdout)["msg"]
    listed = re.search(r"Supported parameters include: ([^.(]*)", msg).group(1)
    return sorted(p.strip() for p in listed.split(","))


@pytest.mark.parametrize("module", MODULES)
def test_sidecar_options_match_the_module(module):
    doc = yaml.safe_load((REPO / "library" / f"{module}.yml").read_text())
    assert doc["DOCUMENTATION"]["module"] == module
    assert sorted(doc["DOCUMENTATION"]["options"]) == supported_parameters(module)
    assert doc["EXAMPLES"].strip() and doc["RETURN"]


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    out = subprocess.run(
        [BIN / "ansible-doc", "-M", REPO / "library", module], capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert f"> MODULE {module} ({REPO / 'library' / module}.yml)" in out.stdout
    for option in supported_parameters(module):
        assert re.search(rf"^[-=] {option}\b", out.stdout, re.MULTILINE), option
