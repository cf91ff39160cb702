"""The host program splitroute laid out as roles/runtime lays it out, under a temporary directory
instead of /usr/lib/splitroute, for the tests that run it with the host's own Python (no ansible)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"


def install(where):
    """(program, plan directory) under WHERE."""
    lib = where / "lib"
    pkg = lib / "ansible_collections" / "splitroute" / "vpn" / "plugins" / "module_utils"
    pkg.mkdir(parents=True)
    for part in [pkg, *pkg.parents][:5]:
        (part / "__init__.py").write_text("")
    for src in (ROOT / "plugins" / "module_utils").glob("_*.py"):
        shutil.copy(src, pkg / src.name)
    template = (ROOT / "roles" / "runtime" / "templates" / "splitroute.j2").read_text()
    head, _newline, launcher = template.partition("\n")
    assert head == "{{ __splitroute_runtime_shebang }}"
    launcher = "#!/usr/bin/python3\n" + launcher.replace("{{ ansible_managed | comment }}", "#")
    assert '"/usr/lib/splitroute"' in launcher
    program = where / "splitroute"
    program.write_text(launcher.replace('"/usr/lib/splitroute"', repr(str(lib))))
    program.chmod(0o755)
    plans = where / "etc"
    plans.mkdir()
    return program, plans


ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def run(program, plans, *args, netns=None):
    """Run the program with the host's Python, isolated (-I: no ansible, no venv), in NETNS if given."""
    if netns:
        return subprocess.run(
            ["ip", "netns", "exec", netns, PYTHON, "-I", str(program), "--plan-dir", str(plans), *args],
            capture_output=True, text=True, check=False, env=ENV,
        )  # fmt: skip
    return subprocess.run(
        [PYTHON, "-I", str(program), "--plan-dir", str(plans), *args], capture_output=True, text=True, check=False,
        env=ENV,
    )  # fmt: skip


def write_plan(plans, role, plan):
    (plans / ("%s.json" % role)).write_text(json.dumps(plan))
