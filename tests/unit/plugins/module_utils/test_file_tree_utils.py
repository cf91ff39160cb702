"""The pure parts of _file_tree: names, modes, ids, and the order of the operations."""

from __future__ import annotations

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _file_tree as ft


@pytest.mark.parametrize(
    ("value", "root"),
    [("/usr/lib/splitroute", "/usr/lib/splitroute"), ("/usr/lib/splitroute/", "/usr/lib/splitroute"), ("/a", "/a")],
)
def test_root_is_normalised(value, root):
    assert ft.check_root(value) == root


@pytest.mark.parametrize(
    "value", ["", "relative", "/", "//", "//a", "/a/./b", "/a/../b", "/a//b", "/a\x00", "/a\x7f", "/a\x85", "/\ud800"]
)
def test_root_is_refused(value):
    with pytest.raises(ft.TreeError, match=r"^path: "):
        ft.check_root(value)


@pytest.mark.parametrize(
    ("value", "mode"), [("644", 0o644), ("0644", 0o644), ("0755", 0o755), ("2755", 0o2755), ("04755", 0o4755)]
)
def test_octal_mode_strings(value, mode):
    assert ft.parse_mode(value, "mode") == mode


@pytest.mark.parametrize("value", [644, 0o644, True, None, "0o644", "64", "0644\n", " 644", "000644", "u=rw", "0x1a4"])
def test_other_modes_are_refused(value):
    with pytest.raises(ft.TreeError, match=r"^mode: "):
        ft.parse_mode(value, "mode")


def test_ids_from_names_and_numbers():
    assert ft.resolve_id("root", "owner", ft.pwd.getpwnam, "user") == 0
    assert ft.resolve_id("65534", "owner", ft.pwd.getpwnam, "user") == 65534
    assert ft.resolve_id(0, "group", ft.grp.getgrnam, "group") == 0
    for bad in ("4294967295", "-1", True, ""):
        with pytest.raises(ft.TreeError, match=r"^owner: "):
            ft.resolve_id(bad, "owner", ft.pwd.getpwnam, "user")


def test_want_collects_the_directories_parents_first():
    w = ft.want({"path": "/srv/t", "files": {"b/c/d.txt": "", "a.txt": "x", "b/e.txt": "é"}})
    assert w.dirs == ["", "b", "b/c"]
    assert w.files == {"a.txt": b"x", "b/c/d.txt": b"", "b/e.txt": "é".encode()}
    assert (w.mode, w.dir_mode, w.uid, w.gid, w.exclusive) == (0o644, 0o755, 0, 0, False)


def test_plan_creates_parents_first_and_removes_children_first(tmp_path):
    root = tmp_path / "t"
    (root / "old/deeper").mkdir(parents=True)
    (root / "old/deeper/x").write_text("")
    (root / "keep.txt").write_text("same")
    w = ft.want({"path": str(root), "files": {"keep.txt": "same", "n/m/o.txt": "o"}, "exclusive": True})
    p = ft.plan(w, ft.have(w))
    assert p.ops == [
        ("mkdir", "n"),
        ("mkdir", "n/m"),
        ("write", "n/m/o.txt"),
        ("unlink", "old/deeper/x"),
        ("rmdir", "old/deeper"),
        ("rmdir", "old"),
    ]
    assert p.created == ["n/", "n/m/", "n/m/o.txt"]
    assert p.removed == ["old/", "old/deeper/", "old/deeper/x"]


def test_invocation_shows_sizes_not_contents():
    shown = ft.invocation({"path": "/t", "files": {"a": "secret", "b": 5}, "mode": "0644"})
    assert shown == {"module_args": {"path": "/t", "files": {"a": "(6 characters)", "b": "(int)"}, "mode": "0644"}}
