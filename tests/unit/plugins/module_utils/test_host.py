"""The host program's core: installed as the runtime role installs it, run by the host's
own Python (no ansible importable), plans read strictly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from host_program import install, run  # tests/host_program.py

from ansible_collections.splitroute.vpn.plugins.module_utils import _host

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def installed(tmp_path):
    """The program laid out as roles/runtime lays it out, under TMP instead of /usr/lib/splitroute."""
    return install(tmp_path)


def test_the_program_runs_without_ansible(installed):
    program, plans = installed
    probe = subprocess.run(["/usr/bin/python3", "-I", "-c", "import ansible"], capture_output=True, check=False)
    assert probe.returncode != 0, "this test needs a host Python without ansible"
    proc = run(program, plans, "plans")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["client -", "gateway -"]
    (plans / "client.json").write_text(json.dumps({"role": "client", "version": _host.PLAN_VERSION}))
    assert run(program, plans, "plans").stdout.startswith("client %s" % (plans / "client.json"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "cannot be read"),
        ("[]", "not a plan of role client"),
        (json.dumps({"role": "gateway", "version": 1}), "not a plan of role client"),
        (json.dumps({"role": "client", "version": 99}), "plan version 99"),
    ],
)
def test_a_bad_plan_file_is_named_and_nothing_runs(installed, text, message):
    program, plans = installed
    (plans / "client.json").write_text(text)
    proc = run(program, plans, "plans")
    assert proc.returncode == 2
    assert message in proc.stderr and str(plans / "client.json") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "m.prom"
    _host.write_atomic(str(target), "a 1\n")
    _host.write_atomic(str(target), "a 2\n")
    assert target.read_text() == "a 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.prom"]
