"""The warden_binary action plugin's cache on the target is run only when it can be trusted: in
the same remote command that runs it, the cached file must have the expected SHA-256, be a
regular file owned by the user running it (or root) and writable by nobody else, in a cache
directory that is a real 0700 directory of that user. Anything else is uploaded afresh. The
attacker plants a binary at the cache path that leaves a marker when it runs."""

import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess

import pytest
from conftest import BIN, REPO

MODULE = "warden_env"  # touches nothing but the file it is given


def cache_name(module=MODULE):
    binary = (REPO / "library" / f"{module}_{os.uname().sysname.lower()}_{os.uname().machine}").resolve()
    return f"{module}-{hashlib.sha256(binary.read_bytes()).hexdigest()[:20]}", binary


def adhoc(tmp_path, cache, *extra, env=None):
    """Runs the module once through the plugin on this machine (local connection); it writes
    tmp_path/agent.env."""
    args = json.dumps({"path": str(tmp_path / "agent.env"), "values": {"AGENT_NAME": "mevy"}})
    argv = [BIN / "ansible", "localhost", "-i", "localhost,", "-c", "local", "-m", MODULE, "-a", args,
            "-e", f"warden_binary_dir={cache}", *extra]
    run_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", **(env or {})}
    done = subprocess.run(argv, cwd=REPO, env=run_env, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def planted(path, marker):
    """A binary an attacker would leave: it reports success and leaves a marker."""
    path.write_text(f'#!/bin/sh\ntouch {marker}\necho \'{{"changed": false, "msg": "planted binary ran"}}\'\n')
    path.chmod(0o700)


def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@pytest.fixture
def cache(tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    return directory


def assert_real_module_ran(rc, out, cache, marker):
    assert rc == 0, out
    assert "planted binary ran" not in out, out
    assert not marker.exists(), "the planted binary was executed"
    assert "AGENT_NAME=mevy" in (marker.parent / "agent.env").read_text().splitlines()
    name, binary = cache_name()
    cached = cache / name
    assert cached.is_file() and not cached.is_symlink()
    assert cached.read_bytes() == binary.read_bytes()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700 and not os.path.islink(cache)


@pytest.mark.parametrize("attack", ["other_content", "symlink_to_it", "group_writable", "world_writable"])
def test_planted_binary_at_the_cache_path_is_not_executed(cache, tmp_path, attack):
    name, _ = cache_name()
    marker = tmp_path / "marker"
    target = cache / name
    if attack == "other_content":
        planted(target, marker)
    elif attack == "symlink_to_it":
        planted(tmp_path / "evil", marker)
        target.symlink_to(tmp_path / "evil")
    else:
        # The right name, the attacker's content, a mode that lets others change it.
        planted(target, marker)
        target.chmod(0o770 if attack == "group_writable" else 0o707)
    rc, out = adhoc(tmp_path, cache, "-vvv")
    assert_real_module_ran(rc, out, cache, marker)
    assert "warden: cache miss on the target" in out, out
    if attack == "symlink_to_it":
        assert (tmp_path / "evil").read_text().startswith("#!/bin/sh"), "the link's target was changed"


def test_cache_directory_that_is_a_symlink_is_replaced_not_followed(tmp_path):
    """The cache directory itself swapped for a link to a directory holding a planted binary
    under the right name: not run, and nothing written into the link's target."""
    name, _ = cache_name()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    planted(elsewhere / name, marker)
    cache = tmp_path / "cache"
    cache.symlink_to(elsewhere)
    rc, out = adhoc(tmp_path, cache, "-vvv")
    assert f"{cache} is not a directory" in out, out
    assert_real_module_ran(rc, out, cache, marker)
    assert sorted(p.name for p in elsewhere.iterdir()) == [name]
    assert "planted binary ran" in (elsewhere / name).read_text()


def test_cache_directory_others_can_write_is_made_private(cache, tmp_path):
    name, _ = cache_name()
    marker = tmp_path / "marker"
    planted(cache / name, marker)
    cache.chmod(0o777)
    rc, out = adhoc(tmp_path, cache, "-vvv")
    assert "has mode drwxrwxrwx, not 0700" in out, out
    assert_real_module_ran(rc, out, cache, marker)


@pytest.mark.skipif(os.geteuid() != 0 or nobody() is None, reason="needs root to plant a file as another user")
def test_binary_owned_by_another_user_is_not_run_even_with_the_right_content(cache, tmp_path):
    """An unprivileged user's file may change between the check and the run: only the user's
    own files or root's count, whatever their content."""
    name, binary = cache_name()
    target = cache / name
    shutil.copyfile(binary, target)
    target.chmod(0o700)
    os.chown(target, nobody().pw_uid, nobody().pw_gid)
    rc, out = adhoc(tmp_path, cache, "-vvv")
    assert rc == 0, out
    assert f"is owned by uid {nobody().pw_uid}" in out, out
    assert target.stat().st_uid == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0 or nobody() is None, reason="needs root to make a directory of another user")
def test_cache_directory_of_another_user_is_refused(cache, tmp_path):
    name, _ = cache_name()
    marker = tmp_path / "marker"
    planted(cache / name, marker)
    os.chown(cache, nobody().pw_uid, nobody().pw_gid)
    os.chown(cache / name, nobody().pw_uid, nobody().pw_gid)
    rc, out = adhoc(tmp_path, cache)
    assert rc != 0, out
    assert f"is owned by uid {nobody().pw_uid}, not 0" in out, out
    assert not marker.exists()


def test_a_valid_cached_binary_is_run_without_an_upload(cache, tmp_path):
    rc, out = adhoc(tmp_path, cache)
    assert rc == 0, out
    name, _ = cache_name()
    inode = (cache / name).stat().st_ino
    rc, out = adhoc(tmp_path, cache, "-vvv")
    assert rc == 0, out
    assert "cache miss" not in out and "PUT " not in out, out
    assert (cache / name).stat().st_ino == inode


def test_freebsd_sha256_is_used_where_it_exists(cache, tmp_path):
    """FreeBSD's base system has `sha256 -q FILE` (sbin/md5); Linux has sha256sum. A stand-in
    for FreeBSD's tool on PATH (recording its calls) is the one the check runs."""
    tools = tmp_path / "freebsd-tools"
    tools.mkdir()
    log = tmp_path / "sha256.log"
    sha256 = tools / "sha256"
    sha256.write_text(f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = -q ] || exit 64\nset -- $(sha256sum "$2")\necho "$1"\n')
    sha256.chmod(0o755)
    path = f"{tools}:{os.environ['PATH']}"
    assert adhoc(tmp_path, cache, env={"PATH": path})[0] == 0
    rc, out = adhoc(tmp_path, cache, "-vvv", env={"PATH": path})
    assert rc == 0, out
    assert "cache miss" not in out, out
    name, _ = cache_name()
    assert f"-q {cache}/{name}" in log.read_text()


def test_uname_answer_is_checked_before_it_builds_a_path(cache, tmp_path):
    """A target that answers `uname -s -m` with a path must not make the controller pick, and
    upload, a file outside library/."""
    tools = tmp_path / "tools"
    tools.mkdir()
    uname = tools / "uname"
    uname.write_text("#!/bin/sh\necho '../../../../etc/passwd x'\n")
    uname.chmod(0o755)
    rc, out = adhoc(tmp_path, cache, "-vvv", env={"PATH": f"{tools}:{os.environ['PATH']}"})
    assert rc != 0, out
    assert "cannot tell the target's platform" in out and "../../../../etc/passwd" in out, out
    assert list(cache.iterdir()) == []
    assert "PUT " not in out


def test_bad_warden_platform_variable_is_refused(cache, tmp_path):
    rc, out = adhoc(tmp_path, cache, "-e", "warden_platform=../../etc/passwd")
    assert rc != 0 and "warden_platform must look like freebsd_amd64" in out, out
    assert list(cache.iterdir()) == []


def test_cache_variables_are_templated(tmp_path):
    """warden_binary_dir (like warden_binary_cache and warden_platform) may be a template: the
    plugin renders it rather than refusing '{{ ... }}' as a relative path."""
    extra = json.dumps({"cache_parent": str(tmp_path), "warden_binary_dir": "{{ cache_parent }}/templated"})
    rc, out = adhoc(tmp_path, "/unused", "-e", extra)
    assert rc == 0, out
    assert [p.name for p in (tmp_path / "templated").iterdir()] == [cache_name()[0]]
