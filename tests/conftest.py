"""Shared fixtures: throwaway network namespaces and a module runner.

Modules run as Ansible runs them on a host: a separate Python process that
reads its arguments from a JSON file and prints its result as JSON. No mocks:
every module acts on the real kernel, inside a namespace the fixture creates
and removes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import ansible
import pytest

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".cache" / "collections"


def pytest_configure(config):
    if os.geteuid() != 0:
        pytest.exit("these suites act on the real kernel and need root", returncode=2)
    if not (COLLECTIONS / "ansible_collections" / "splitroute" / "vpn").exists():
        pytest.exit("run `make deps` first (it links the collection under .cache/collections)", returncode=2)


class ModuleFailed(AssertionError):
    pass


def ansible_only_path():
    """A directory holding only a link to the venv's ansible package."""
    path = ROOT / ".cache" / "ansible-only"
    link = path / "ansible"
    if not link.exists():
        path.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(ansible.__file__).parent)
    return path


SYSTEM_PYTHON = "/usr/bin/python3"


def run_module(name, args, check=False, diff=True, python=None, expect_fail=False):
    """Run module splitroute.vpn.NAME with ARGS; return its result dict."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
        path = fh.name
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    if python and python != sys.executable:
        # Another interpreter (Debian's /usr/bin/python3 with pyroute2 0.7, as on a managed host):
        # give it ansible-core's module_utils and nothing else from the venv.
        env["PYTHONPATH"] = "%s:%s" % (ansible_only_path(), COLLECTIONS)
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "ansible_collections.splitroute.vpn.plugins.modules.%s" % name, path],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    finally:
        os.unlink(path)
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise ModuleFailed(
            "module %s printed no JSON (rc=%s):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr)
        ) from exc
    if expect_fail:
        if not result.get("failed"):
            raise ModuleFailed("module %s was expected to fail but returned %r" % (name, result))
    elif result.get("failed"):
        raise ModuleFailed("module %s failed: %s" % (name, result.get("msg")))
    return result


def run_four(name, args, python=None):
    """The house pattern: check (changed), real (changed), check (unchanged), real (unchanged).

    Returns the result of the first real run.
    """
    first_check = run_module(name, args, check=True, python=python)
    assert first_check["changed"] is True, first_check
    real = run_module(name, args, python=python)
    assert real["changed"] is True, real
    second_check = run_module(name, args, check=True, python=python)
    assert second_check["changed"] is False, second_check
    second_real = run_module(name, args, python=python)
    assert second_real["changed"] is False, second_real
    return real


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def netns():
    """A fresh, empty network namespace (loopback up); removed afterwards."""
    name = "srt-" + uuid.uuid4().hex[:10]
    _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")
    yield name
    _ip("netns", "del", name, check=False)
    shutil.rmtree("/etc/netns/%s" % name, ignore_errors=True)


@pytest.fixture
def nsexec(netns):
    """Run a command inside the fixture's namespace; returns CompletedProcess."""

    def _run(*cmd, check=True, **kw):
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, check=check, **kw)

    return _run


@pytest.fixture
def module():
    return run_module


@pytest.fixture
def four():
    return run_four
