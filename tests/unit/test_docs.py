"""docs/modules/ is generated from the modules' own documentation: fail when it is stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_module_pages_are_current(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), str(tmp_path)], check=True)
    committed = ROOT / "docs" / "modules"
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in committed.iterdir()), "run `make docs`"
    for name in generated:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), (
            "docs/modules/%s is stale: run `make docs`" % name
        )
