"""docs/modules/ and docs/roles/ are generated from the modules' documentation and the roles'
argument specs: fail when the committed pages are stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_generated_pages_are_current(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), str(tmp_path)], check=True)
    for generated_dir, committed in (
        (tmp_path, ROOT / "docs" / "modules"),
        (tmp_path / "roles", ROOT / "docs" / "roles"),
    ):
        generated = sorted(p.name for p in generated_dir.iterdir() if p.is_file())
        assert generated == sorted(p.name for p in committed.iterdir()), "run `make docs`"
        for name in generated:
            assert (generated_dir / name).read_text() == (committed / name).read_text(), (
                "%s/%s is stale: run `make docs`" % (committed, name)
            )
