"""splitroute.vpn.file_tree run as Ansible runs it, on a real tree in a temporary directory."""

from __future__ import annotations

import json
import os
import stat

import pytest

FILES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "VALUE = 1\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": "print('deep')\n",
    "top.txt": "top\n",
}


def snapshot(root):
    """Everything under ROOT (ROOT included): kind, mode, owner, inode, mtime and content or link target."""
    if not os.path.lexists(root):
        return None
    out = {}
    for top, dirnames, filenames in os.walk(root):
        for name in [""] if top == str(root) else []:
            out[name] = _entry(top)
        for name in dirnames + filenames:
            full = os.path.join(top, name)
            out[os.path.relpath(full, root)] = _entry(full)
    return out


def _entry(full):
    st = os.lstat(full)
    if stat.S_ISLNK(st.st_mode):
        body = "-> " + os.readlink(full)
    elif stat.S_ISREG(st.st_mode):
        with open(full, "rb") as fh:
            body = fh.read()
    else:
        body = None
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns, body)


@pytest.fixture
def root(tmp_path):
    return tmp_path / "tree"


def args(root, files=None, **kw):
    return dict({"path": str(root), "files": dict(FILES if files is None else files)}, **kw)


# ---- create, idempotence, updates -------------------------------------------------------------


def test_create_four_times(root, four):
    real = four("file_tree", args(root))
    assert real["created"] == ["./", "pkg/", "pkg/__init__.py", "pkg/mod.py", "pkg/sub/", "pkg/sub/__init__.py",
                               "pkg/sub/deep.py", "top.txt"]  # fmt: skip
    assert real["updated"] == [] and real["removed"] == []
    assert real["path"] == str(root)
    for rel, content in FILES.items():
        st = os.lstat(root / rel)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 0, 0)
        assert (root / rel).read_text() == content
    for rel in ("", "pkg", "pkg/sub"):
        st = os.lstat(root / rel)
        assert stat.S_ISDIR(st.st_mode) and (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0)
    assert sorted(p.name for p in root.rglob("*.tmp")) == []
    # a created file is one line, not its content
    assert {"prepared": "created %s/pkg/mod.py (10 bytes, mode 0644)\n" % root} in real["diff"]
    assert {"prepared": "created directory %s/pkg/sub/ (mode 0755)\n" % root} in real["diff"]
    assert not any("before" in d or "after" in d for d in real["diff"])


def test_trailing_slash_is_the_same_tree(root, module, four):
    four("file_tree", args(root))
    result = module("file_tree", args(str(root) + "/"))
    assert result["changed"] is False and result["path"] == str(root)


def test_one_changed_file_is_the_only_one_written(root, module, four):
    module("file_tree", args(root))
    before = snapshot(root)
    real = four("file_tree", args(root, dict(FILES, **{"pkg/mod.py": "VALUE = 2\n"})))
    assert real["updated"] == ["pkg/mod.py"] and real["created"] == [] and real["removed"] == []
    after = snapshot(root)
    assert (root / "pkg/mod.py").read_text() == "VALUE = 2\n"
    assert after["pkg/mod.py"][4] != before["pkg/mod.py"][4]  # a new inode: written aside and renamed
    for rel in set(before) - {"pkg/mod.py"}:  # the others untouched (a directory's mtime follows its entries)
        assert after[rel][:5] + after[rel][6:] == before[rel][:5] + before[rel][6:]
        assert after[rel][5] == before[rel][5] or rel == "pkg"
    full = "%s/pkg/mod.py" % root
    assert real["diff"] == [
        {"before_header": full, "after_header": full, "before": "VALUE = 1\n", "after": "VALUE = 2\n"}
    ]


def test_same_size_other_content_is_updated(root, module):
    module("file_tree", args(root))
    result = module("file_tree", args(root, dict(FILES, **{"top.txt": "TOP\n"})))
    assert result["updated"] == ["top.txt"] and (root / "top.txt").read_text() == "TOP\n"


def test_new_file_in_a_new_directory(root, module, four):
    module("file_tree", args(root))
    real = four("file_tree", args(root, dict(FILES, **{"other/x/y.txt": "y"})))
    assert real["created"] == ["other/", "other/x/", "other/x/y.txt"]
    assert real["updated"] == []


def test_mode_owner_group_change_is_applied_in_place(root, module, four):
    module("file_tree", args(root))
    before = snapshot(root)
    real = four("file_tree", args(root, mode="0600", directory_mode="0750", owner="nobody", group="nogroup"))
    assert real["updated"] == sorted(["./", "pkg/", "pkg/sub/"] + list(FILES))
    after = snapshot(root)
    for rel, entry in after.items():
        kind, mode, uid, gid, ino, _mtime, body = entry
        assert (uid, gid) == (65534, 65534)
        assert mode == (0o750 if kind == stat.S_IFDIR else 0o600)
        assert (ino, body) == (before[rel][4], before[rel][6])  # same files, not rewritten
    assert {"prepared": "%s/top.txt: mode 0644 -> 0600, owner 0 -> 65534, group 0 -> 65534\n" % root} in real["diff"]
    # numeric ids are the same owner
    again = module("file_tree", args(root, mode="600", directory_mode="0750", owner="65534", group="65534"))
    assert again["changed"] is False


def test_content_and_mode_change_together(root, module):
    module("file_tree", args(root))
    result = module("file_tree", args(root, dict(FILES, **{"top.txt": "new\n"}), mode="0640"))
    diff = next(d for d in result["diff"] if d.get("after_header", "").endswith("/top.txt"))
    assert (diff["before"], diff["after"]) == ("top\n", "new\n")
    assert diff["prepared"] == "%s/top.txt: mode 0644 -> 0640\n" % root
    assert stat.S_IMODE(os.stat(root / "top.txt").st_mode) == 0o640


def test_large_and_binary_old_content_are_not_shown(root, module):
    module("file_tree", args(root, {"big.txt": "a" * 200000, "bin.dat": "x"}))
    (root / "bin.dat").write_bytes(b"\xff\xfe")
    result = module("file_tree", args(root, {"big.txt": "b" * 200000, "bin.dat": "y"}))
    assert result["updated"] == ["big.txt", "bin.dat"]
    big, binary = result["diff"]
    assert big == {
        "before_header": "%s/big.txt" % root,
        "after_header": "%s/big.txt" % root,
        "prepared": "%s/big.txt: content changed (200000 -> 200000 bytes), not shown: larger than 104448 bytes\n"
        % root,
    }
    assert "before" not in binary and "not UTF-8" in binary["prepared"]
    assert (root / "bin.dat").read_text() == "y"


def test_contents_are_not_in_the_result_and_the_diff_is_not_masked(root, module):
    files = {"secret.conf": "PrivateKey = not-really-secret\n", "e": "e"}
    result = module("file_tree", args(root, files))
    shown = json.dumps({k: v for k, v in result.items() if k != "diff"})
    assert "not-really-secret" not in shown
    assert result["invocation"]["module_args"]["files"] == {"secret.conf": "(31 characters)", "e": "(1 characters)"}
    # files is no_log (not logged to the journal), yet a one-letter content does not mask that letter everywhere
    assert result["path"] == str(root) and result["created"] == ["./", "e", "secret.conf"]
    (root / "secret.conf").write_text("PrivateKey = old\n")
    diff = module("file_tree", args(root, files))["diff"]
    assert diff[0]["after"] == "PrivateKey = not-really-secret\n"


def test_string_values_stay_text(root, module):
    files = {"unicode/bücher.txt": "Grüße\n", "no-newline": "x", "crlf.txt": "a\r\nb\r\n"}
    module("file_tree", args(root, files))
    assert (root / "unicode/bücher.txt").read_bytes() == "Grüße\n".encode()
    assert (root / "no-newline").read_bytes() == b"x"
    assert (root / "crlf.txt").read_bytes() == b"a\r\nb\r\n"


# ---- exclusive -----------------------------------------------------------------------------------


def make_strays(root):
    (root / "stray.txt").write_text("stray\n")
    (root / "old/deeper").mkdir(parents=True)
    (root / "old/deeper/gone.py").write_text("")
    (root / "link").symlink_to("/etc/hostname")
    (root / "pkg/dirlink").symlink_to("/etc")
    (root / "pkg/__pycache__").mkdir()
    (root / "pkg/__pycache__/mod.cpython-311.pyc").write_bytes(b"\x00pyc")
    (root / "gone_pkg/__pycache__").mkdir(parents=True)
    (root / "gone_pkg/__pycache__/x.cpython-311.pyc").write_bytes(b"\x00pyc")
    (root / "gone_pkg/x.py").write_text("")


def test_exclusive_removes_strays_and_emptied_directories(root, module, four):
    module("file_tree", args(root))
    make_strays(root)
    kept = snapshot(root / "pkg/__pycache__")
    real = four("file_tree", args(root, exclusive=True))
    assert real["removed"] == ["gone_pkg/x.py", "link", "old/", "old/deeper/", "old/deeper/gone.py", "pkg/dirlink",
                               "stray.txt"]  # fmt: skip
    assert real["created"] == [] and real["updated"] == []
    assert {"prepared": "removed %s/old/deeper/\n" % root} in real["diff"]
    assert not os.path.lexists(root / "old") and not os.path.lexists(root / "link")
    assert os.path.exists("/etc/hostname") and os.path.isdir("/etc")  # links removed, not followed
    # __pycache__ is left alone, and keeps its directory
    assert snapshot(root / "pkg/__pycache__") == kept
    assert sorted(os.listdir(root / "gone_pkg")) == ["__pycache__"]
    assert sorted(os.listdir(root)) == ["gone_pkg", "pkg", "top.txt"]


def test_without_exclusive_strays_stay(root, module):
    module("file_tree", args(root))
    make_strays(root)
    before = snapshot(root)
    result = module("file_tree", args(root))
    assert result["changed"] is False and result["removed"] == []
    assert snapshot(root) == before


def test_exclusive_with_no_files_empties_the_tree(root, module):
    module("file_tree", args(root))
    result = module("file_tree", args(root, {}, exclusive=True))
    assert result["removed"] == sorted(["pkg/", "pkg/sub/"] + list(FILES))
    assert os.listdir(root) == []


# ---- absent ------------------------------------------------------------------------------------


def test_absent_four_times(root, module, four):
    module("file_tree", args(root))
    (root / "pkg/__pycache__").mkdir()
    (root / "pkg/__pycache__/mod.cpython-311.pyc").write_bytes(b"")
    (root / "link").symlink_to("/etc")
    real = four("file_tree", {"path": str(root), "state": "absent"})
    assert not os.path.lexists(root)
    assert os.path.isdir("/etc")
    assert real["removed"] == sorted(["./", "link", "pkg/", "pkg/__pycache__/", "pkg/__pycache__/mod.cpython-311.pyc",
                                      "pkg/sub/"] + list(FILES))  # fmt: skip
    assert real["diff"][0]["prepared"].startswith("removed %s and everything in it:\n  ./\n  link\n" % root)


def test_absent_when_missing_is_no_change(root, module):
    result = module("file_tree", {"path": str(root), "state": "absent"}, check=True)
    assert result["changed"] is False and result["removed"] == []
    assert module("file_tree", {"path": str(root), "state": "absent"})["changed"] is False


# ---- check mode --------------------------------------------------------------------------------


def test_check_mode_writes_nothing(root, module):
    result = module("file_tree", args(root), check=True)
    assert result["changed"] is True and "pkg/mod.py" in result["created"]
    assert not os.path.lexists(root)
    module("file_tree", args(root))
    make_strays(root)
    before = snapshot(root)
    changed = dict(FILES, **{"pkg/mod.py": "VALUE = 3\n", "new/file": "n"})
    for case in (
        args(root, changed, exclusive=True, mode="0600"),
        {"path": str(root), "state": "absent"},
    ):
        result = module("file_tree", case, check=True)
        assert result["changed"] is True
        assert snapshot(root) == before


# ---- bad input: a message that names the option, and nothing changed ----------------------------

LONG = "x" * 256
BAD = {
    "relative path": ({"path": "tree"}, "path: must be an absolute directory"),
    "dot-dot in path": ({"path": "{tmp}/../tree"}, "/../tree' must not have '.', '..' or empty components"),
    "slash as path": ({"path": "/"}, "path: '/' itself"),
    "control character in path": ({"path": "{tmp}/tr\nee"}, "tr\\nee' contains a control character (U+000A)"),
    "path not a string": ({"path": ["/tmp/x"]}, "path: must be a string, not list"),
    "leading slash in a name": ({"files": {"/etc/passwd": "x"}}, "files['/etc/passwd']: must be relative"),
    "dot-dot in a name": ({"files": {"pkg/../../escape": "x"}}, "files['pkg/../../escape']: must not have"),
    "dot in a name": ({"files": {"pkg/./mod.py": "x"}}, "files['pkg/./mod.py']: must not have"),
    "empty component in a name": ({"files": {"pkg//mod.py": "x"}}, "files['pkg//mod.py']: must not have"),
    "trailing slash in a name": ({"files": {"pkg/": "x"}}, "files['pkg/']: must not have"),
    "empty name": ({"files": {"": "x"}}, "files['']: a file name must not be empty"),
    "newline in a name": ({"files": {"a\nb": "x"}}, "files['a\\nb']: contains a control character (U+000A)"),
    "component too long": ({"files": {LONG: "x"}}, "files['%s...']: a component is longer than 255 bytes" % LONG[:75]),
    "number as content": ({"files": {"n.txt": 5}}, "files['n.txt']: the content must be a string, not int"),
    "boolean as content": ({"files": {"b.txt": True}}, "files['b.txt']: the content must be a string, not bool"),
    "null as content": ({"files": {"z.txt": None}}, "files['z.txt']: the content must be a string, not null"),
    "list as content": ({"files": {"l.txt": ["a"]}}, "files['l.txt']: the content must be a string, not list"),
    "lone surrogate in content": ({"files": {"s.txt": "\ud800"}}, "files['s.txt']: the content is not valid text"),
    "a name is a file and a directory": ({"files": {"d": "", "d/e": ""}}, "files['d']: is a file, but files['d/e']"),
    "files not a dictionary": ({"files": "a=b"}, "files: must be a dictionary, not str"),
    "files missing": ({"files": None}, "missing: files"),
    "mode as a number": ({"mode": 644}, "mode: must be an octal string such as '0644' in quotes, not int 644"),
    "mode not octal": ({"mode": "0999"}, "mode: '0999' is not an octal mode"),
    "symbolic mode": ({"mode": "u=rw"}, "mode: 'u=rw' is not an octal mode"),
    "directory_mode as a number": ({"directory_mode": 493}, "directory_mode: must be an octal string"),
    "unknown owner": ({"owner": "no-such-user-x"}, "owner: no such user 'no-such-user-x' on this host"),
    "unknown group": ({"group": "no-such-group-x"}, "group: no such group 'no-such-group-x' on this host"),
    "owner as a list": ({"owner": ["root"]}, "owner: must be a string, not list"),
    "state": ({"state": "latest"}, "value of state must be one of: present, absent, got: latest"),
    "per-file mode as a number": (
        {"files": {"m.txt": {"content": "x", "mode": 384}}},
        "files['m.txt'].mode: must be an octal string such as '0644' in quotes, not int 384",
    ),
    "per-file mode not octal": ({"files": {"m.txt": {"content": "x", "mode": "0800"}}}, "files['m.txt'].mode: '0800'"),
    "unknown key in a file": (
        {"files": {"k.txt": {"content": "x", "owner": "nobody"}}},
        "files['k.txt']: unknown key 'owner'; a file is a string or a dictionary with content and optionally mode",
    ),
    "file without content": ({"files": {"c.txt": {"mode": "0600"}}}, "files['c.txt']: the dictionary has no content"),
    "number as content in a dictionary": (
        {"files": {"n.txt": {"content": 5}}},
        "files['n.txt']: the content must be a string, not int",
    ),
    "validate without %s": ({"validate": {"*.nft": "nft -c -f"}}, "validate['*.nft']: the command 'nft -c -f' must"),
    "validate not a dictionary": ({"validate": "nft -c -f %s"}, "validate: must be a dictionary, not str"),
    "validate command not a string": ({"validate": {"*": ["nft", "%s"]}}, "validate['*']: the command must be a"),
    "validate with %s as the program": ({"validate": {"*": "%s --check"}}, "validate['*']: the program (the first"),
    "validate with a relative program": ({"validate": {"*": "bin/check %s"}}, "the program 'bin/check' must be a name"),
    "validate with an open quote": ({"validate": {"*": "nft -c -f '%s"}}, "cannot be split into words"),
    "validate with a newline": ({"validate": {"*": "nft -c -f %s\nrm -rf /"}}, "contains a control character (U+000A)"),
    "validate pattern with a leading slash": ({"validate": {"/etc/*.nft": "nft -c -f %s"}}, "validate['/etc/*.nft']:"),
    "validate pattern with **": ({"validate": {"**/*.nft": "nft -c -f %s"}}, "'**' is not supported"),
    "validate pattern with ..": ({"validate": {"../*.nft": "nft -c -f %s"}}, "validate['../*.nft']: must not have"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_option_and_changes_nothing(root, tmp_path, module, case):
    module("file_tree", args(root))
    make_strays(root)
    before = snapshot(root)
    overrides, expected = BAD[case]
    overrides = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in overrides.items()}
    call = dict(args(root, dict(FILES, **{"pkg/mod.py": "changed\n", "new.txt": "new"}), exclusive=True), **overrides)
    if call["files"] is None:
        del call["files"]
    result = module("file_tree", call, expect_fail=True)
    assert expected in result["msg"]
    assert snapshot(root) == before
    assert sorted(os.listdir(tmp_path)) == ["tree"]


def test_every_bad_entry_is_named_at_once(root, module):
    result = module("file_tree", args(root, {"/a": "", "b/../c": "", "ok": 1}, mode=420), expect_fail=True)
    for name in ("files['/a']", "files['b/../c']", "files['ok']", "mode: "):
        assert name in result["msg"]
    assert not os.path.lexists(root)


# ---- something in the way: refused before any change ---------------------------------------------


def link_at_a_file(root, outside):
    (root / "top.txt").unlink()
    (root / "top.txt").symlink_to(outside / "target.txt")


def link_at_a_directory(root, outside):
    os.rename(root / "pkg/sub", outside / "sub")
    (root / "pkg/sub").symlink_to(outside / "sub")


def link_at_the_root(root, outside):
    os.rename(root, outside / "real")
    root.symlink_to(outside / "real")


def file_at_a_directory(root, outside):
    for name in os.listdir(root / "pkg/sub"):
        (root / "pkg/sub" / name).unlink()
    (root / "pkg/sub").rmdir()
    (root / "pkg/sub").write_text("in the way\n")


def directory_at_a_file(root, outside):
    (root / "top.txt").unlink()
    (root / "top.txt").mkdir()


def fifo_at_a_file(root, outside):
    (root / "top.txt").unlink()
    os.mkfifo(root / "top.txt")


def stray_fifo_with_exclusive(root, outside):
    os.mkfifo(root / "pkg/fifo")


IN_THE_WAY = {
    link_at_a_file: "files['top.txt']: %s/top.txt is a symlink, not a file",
    link_at_a_directory: "files['pkg/sub/__init__.py']: %s/pkg/sub is a symlink where a directory must go",
    link_at_the_root: "path: %s is a symlink, not a directory",
    file_at_a_directory: "files['pkg/sub/__init__.py']: %s/pkg/sub is a file where a directory must go",
    directory_at_a_file: "files['top.txt']: %s/top.txt is a directory, not a file",
    fifo_at_a_file: "files['top.txt']: %s/top.txt is a fifo, not a file",
    stray_fifo_with_exclusive: "exclusive: %s/pkg/fifo is a fifo; only files, symlinks and directories are removed",
}


@pytest.mark.parametrize("make", list(IN_THE_WAY), ids=lambda f: f.__name__)
def test_something_in_the_way_is_refused_before_any_change(root, tmp_path, module, make):
    module("file_tree", args(root))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("outside\n")
    (root / "stray.txt").write_text("stray\n")
    make(root, outside)
    before, before_outside = snapshot(root), snapshot(outside)
    changed = dict(FILES, **{"pkg/mod.py": "changed\n", "top.txt": "changed\n", "pkg/sub/deep.py": "changed\n"})
    result = module("file_tree", args(root, changed, exclusive=True, mode="0600"), expect_fail=True)
    assert IN_THE_WAY[make] % root in result["msg"]
    assert result["msg"].startswith("nothing was changed: ")
    assert snapshot(root) == before
    assert snapshot(outside) == before_outside


def test_missing_parent_is_refused(tmp_path, module):
    result = module("file_tree", args(tmp_path / "missing" / "tree"), expect_fail=True)
    assert "path: the parent directory %s/missing does not exist" % tmp_path in result["msg"]
    assert os.listdir(tmp_path) == []


def test_missing_parent_in_check_mode_reports_the_tree_as_created(tmp_path, module):
    # (an earlier task of a check run, which made nothing, is what would make the parent)
    result = module("file_tree", args(tmp_path / "missing" / "tree"), check=True)
    assert result["changed"] and "./" in result["created"] and "pkg/mod.py" in result["created"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_file_at_the_root_is_refused(root, module, state):
    root.write_text("a file\n")
    result = module("file_tree", args(root, state=state), expect_fail=True)
    assert "path: %s is a file, not a directory" % root in result["msg"]
    assert root.read_text() == "a file\n"


# ---- validate --------------------------------------------------------------------------------------

NFT_MAIN = (
    'table inet file_tree_test {\n  include "./sets.inc"\n  chain input { type filter hook input priority 0; }\n}\n'
)
NFT_SETS = "set allowed { type ipv4_addr; }  # included by main.nft, not valid on its own\n"
NFT_BAD = "# marker-in-the-bad-file\ntable inet file_tree_test {\n  chain input { bogus }\n}\n"
NFT_OTHER = "# marker-in-the-good-file\ntable inet file_tree_other {\n}\n"
DNS_GOOD = "no-resolv\nserver=192.0.2.53\n"
DNS_BAD = "no-resolv\nno-such-option=1\n"
VALIDATE = {"*.nft": "nft -c -f %s", "dns/*.conf": "dnsmasq --test --conf-file=%s"}
CONFIG = {"main.nft": NFT_MAIN, "sets.inc": NFT_SETS, "dns/front.conf": DNS_GOOD, "dns/README": "not checked\n"}


def warning_texts(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_validated_files_are_written_four_times(root, module, four):
    first_check = module("file_tree", args(root, CONFIG, validate=VALIDATE), check=True)
    assert first_check["validated"] == ["dns/front.conf", "main.nft"]  # check mode validates too
    assert not os.path.lexists(root)
    real = four("file_tree", args(root, CONFIG, validate=VALIDATE))
    # main.nft's include "./sets.inc" reads the new sets.inc: the whole new tree is there, in its directory
    assert real["validated"] == ["dns/front.conf", "main.nft"]
    assert (root / "main.nft").read_text() == NFT_MAIN and (root / "dns/front.conf").read_text() == DNS_GOOD
    again = module("file_tree", args(root, CONFIG, validate=VALIDATE))
    assert again["changed"] is False and again["validated"] == []  # nothing to write, nothing to validate
    changed = module("file_tree", args(root, dict(CONFIG, **{"dns/front.conf": "no-hosts\n"}), validate=VALIDATE))
    assert changed["updated"] == ["dns/front.conf"] and changed["validated"] == ["dns/front.conf"]


def test_without_validate_nothing_is_validated(root, module):
    result = module("file_tree", args(root, {"bad.nft": NFT_BAD}))
    assert result["validated"] == [] and (root / "bad.nft").read_text() == NFT_BAD


@pytest.mark.parametrize("check", [False, True], ids=["real", "check"])
def test_a_bad_file_leaves_every_file_unwritten(root, module, check):
    module("file_tree", args(root, {"a.nft": NFT_OTHER, "b.nft": NFT_OTHER, "dns/x.conf": DNS_GOOD}))
    before = snapshot(root)
    changed = {"a.nft": NFT_OTHER + "# a changed, and valid\n", "b.nft": NFT_BAD, "dns/x.conf": DNS_BAD, "new.txt": ""}
    result = module("file_tree", args(root, changed, validate=VALIDATE, exclusive=True), check=check, expect_fail=True)
    assert snapshot(root) == before
    msg = result["msg"]
    assert msg.startswith("nothing was changed: ")
    # every refused file is named, with its pattern, command, exit status and the validator's own output
    assert (
        "validate['*.nft']: 'nft -c -f %s' refused the new content of files['b.nft'] (exit status 1); stderr: " in msg
    )
    assert "syntax error" in msg and "chain input { bogus }" in msg  # nft quotes the line in error
    assert (
        "validate['dns/*.conf']: 'dnsmasq --test --conf-file=%s' refused the new content of files['dns/x.conf']" in msg
    )
    assert "bad option at line 2" in msg
    assert "files['a.nft']" not in msg
    # contents are not in the message, only what the validators print
    assert "marker-in-the-bad-file" not in msg and "marker-in-the-good-file" not in msg and "a changed" not in msg
    assert "no-such-option" not in json.dumps(result["invocation"])


def test_a_bad_file_in_a_new_tree_creates_nothing(root, module):
    result = module("file_tree", args(root, {"a.nft": NFT_OTHER, "z/b.nft": NFT_BAD}, validate={"*.nft": "nft -c -f %s",
                    "*/*.nft": "nft -c -f %s"}), expect_fail=True)  # fmt: skip
    assert "validate['*/*.nft']: 'nft -c -f %s' refused the new content of files['z/b.nft']" in result["msg"]
    assert not os.path.lexists(root)


def test_every_matching_pattern_runs(root, module):
    validate = {"*.conf": "dnsmasq --test --conf-file=%s", "dns/*": "false %s"}
    result = module("file_tree", args(root, {"dns/a.conf": DNS_GOOD}, validate=validate), expect_fail=True)
    assert (
        "validate['dns/*']: 'false %s' refused the new content of files['dns/a.conf'] (exit status 1)" in result["msg"]
    )
    assert "validate['*.conf']" not in result["msg"]  # dnsmasq ran and accepted it
    assert not os.path.lexists(root)
    result = module(
        "file_tree", args(root, {"dns/a.conf": DNS_GOOD}, validate=dict(validate, **{"dns/*": "test -s %s"}))
    )
    assert result["validated"] == ["dns/a.conf"]


def test_a_pattern_does_not_cross_a_slash(root, module):
    files = {"top.nft": NFT_OTHER, "sub/deep.nft": NFT_BAD}
    result = module("file_tree", args(root, files, validate={"*.nft": "nft -c -f %s"}))
    assert result["validated"] == ["top.nft"]


def test_the_copy_is_private_in_its_own_directory_and_removed(root, tmp_path, module):
    tmp = tmp_path / "moduletmp"
    tmp.mkdir()
    show = "sh -c 'stat -c %a \"$1\"; stat -c %a .; pwd; cat ../other.txt; exit 3' sh %s"
    files = {"sub/probe.txt": "probe\n", "other.txt": "the new other\n"}
    root.mkdir()
    (root / "other.txt").write_text("the old other\n")
    result = module(
        "file_tree", args(root, files, validate={"sub/*": show}, _ansible_tmpdir=str(tmp)), expect_fail=True
    )
    assert (
        "refused the new content of files['sub/probe.txt'] (exit status 3); stdout: 600\n700\n%s/file_tree-validate-"
        % tmp
        in result["msg"]
    )
    assert "/sub\nthe new other" in result["msg"]  # run in the copy's directory, next to the tree's new files
    assert os.listdir(tmp) == []
    assert sorted(os.listdir(root)) == ["other.txt"]
    result = module("file_tree", args(root, files, validate={"sub/*": "test -s %s"}, _ansible_tmpdir=str(tmp)))
    assert result["validated"] == ["sub/probe.txt"] and os.listdir(tmp) == []


def test_long_validator_output_is_cut(root, module):
    noisy = "sh -c 'head -c 5000 /dev/zero | tr \"\\\\0\" x; exit 1' sh %s"
    result = module("file_tree", args(root, {"a": "a"}, validate={"a": noisy}), expect_fail=True)
    assert "stdout: %s [... 4000 more characters]" % ("x" * 1000) in result["msg"]
    assert "x" * 1001 not in result["msg"]


def test_a_missing_validator_warns_in_check_mode_and_fails_otherwise(root, module):
    validate = dict(VALIDATE, **{"dns/*.conf": "splitroute-no-such-validator --test %s"})
    result = module("file_tree", args(root, CONFIG, validate=validate), check=True)
    assert result["changed"] is True and result["validated"] == ["main.nft"]  # the installed one still ran
    assert warning_texts(result) == [
        "validate['dns/*.conf']: 'splitroute-no-such-validator' is not installed on this host (not in PATH, /sbin, "
        "/usr/sbin nor /usr/local/sbin); not validated in check mode: files['dns/front.conf'] (a run that is not in "
        "check mode fails unless it is installed by then)"
    ]
    assert not os.path.lexists(root)
    bad = module("file_tree", args(root, dict(CONFIG, **{"main.nft": NFT_BAD}), validate=validate), check=True,
                 expect_fail=True)  # fmt: skip
    assert "refused the new content of files['main.nft']" in bad["msg"]
    result = module("file_tree", args(root, CONFIG, validate=validate), expect_fail=True)
    assert result["msg"] == (
        "nothing was changed: validate['dns/*.conf']: 'splitroute-no-such-validator' is not installed on this host "
        "(not in PATH, /sbin, /usr/sbin nor /usr/local/sbin); it must validate files['dns/front.conf']"
    )
    assert not os.path.lexists(root)
    # an absolute path that is not there is missing too
    result = module("file_tree", args(root, CONFIG, validate={"*.nft": "/nonexistent/nft -c -f %s"}), expect_fail=True)
    assert (
        "validate['*.nft']: '/nonexistent/nft' is not installed on this host (no such executable file)" in result["msg"]
    )
    # a validator that is missing but not needed (nothing to write) is no failure
    module("file_tree", args(root, CONFIG))
    assert module("file_tree", args(root, CONFIG, validate=validate))["changed"] is False


# ---- a mode per file -------------------------------------------------------------------------------


def test_a_mode_per_file_four_times(root, module, four):
    files = {"public.conf": "public\n", "secret.key": {"content": "not-really-a-key\n", "mode": "0600"},
             "sub/default.conf": {"content": "x\n"}, "sub/null.conf": {"content": "y\n", "mode": None}}  # fmt: skip
    real = four("file_tree", args(root, files, mode="0640"))
    modes = {rel: stat.S_IMODE(os.lstat(root / rel).st_mode) for rel in files}
    assert modes == {"public.conf": 0o640, "secret.key": 0o600, "sub/default.conf": 0o640, "sub/null.conf": 0o640}
    assert (root / "secret.key").read_text() == "not-really-a-key\n"
    assert {"prepared": "created %s/secret.key (17 bytes, mode 0600)\n" % root} in real["diff"]
    shown = real["invocation"]["module_args"]["files"]
    assert shown["secret.key"] == {"content": "(17 characters)", "mode": "0600"}
    assert shown["public.conf"] == "(7 characters)"
    assert "not-really-a-key" not in json.dumps({k: v for k, v in real.items() if k != "diff"})
    # a file's own mode changes in place, and the others stay
    before = snapshot(root)
    changed = dict(files, **{"secret.key": {"content": "not-really-a-key\n", "mode": "0400"}})
    result = four("file_tree", args(root, changed, mode="0640"))
    assert result["updated"] == ["secret.key"]
    assert {"prepared": "%s/secret.key: mode 0600 -> 0400\n" % root} in result["diff"]  # "0600" is not masked
    after = snapshot(root)
    assert after["secret.key"][4] == before["secret.key"][4] and after["secret.key"][1] == 0o400
    assert {k: v for k, v in after.items() if k != "secret.key"} == {
        k: v for k, v in before.items() if k != "secret.key"
    }


def test_a_mode_change_alone_is_not_validated_again(root, module):
    files = {"a.conf": {"content": "a\n", "mode": "0644"}, "b.conf": "b\n"}
    assert module("file_tree", args(root, files, validate={"*": "test -s %s"}))["validated"] == ["a.conf", "b.conf"]
    refuse = {"*": "false %s"}
    result = module("file_tree", args(root, dict(files, **{"a.conf": {"content": "a\n", "mode": "0600"}}), mode="0600",
                                      validate=refuse))  # fmt: skip
    assert result["updated"] == ["a.conf", "b.conf"] and result["validated"] == []
    assert stat.S_IMODE(os.lstat(root / "a.conf").st_mode) == 0o600
    result = module("file_tree", args(root, dict(files, **{"a.conf": "new\n"}), validate=refuse), expect_fail=True)
    assert "validate['*']: 'false %s' refused the new content of files['a.conf']" in result["msg"]
    assert (root / "a.conf").read_text() == "a\n"


def test_a_validator_that_cannot_run_fails(root, tmp_path, module):
    program = tmp_path / "not-a-program"
    program.write_bytes(b"\x00\x01 neither a script nor a binary\n")
    program.chmod(0o755)
    result = module("file_tree", args(root, {"a": "a"}, validate={"a": "%s %%s" % program}), expect_fail=True)
    assert "validate['a']: '%s %%s' could not run for files['a']: Exec format error" % program in result["msg"]
    assert not os.path.lexists(root)
