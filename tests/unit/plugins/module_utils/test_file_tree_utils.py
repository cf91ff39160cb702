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


def test_invocation_shows_a_files_mode_but_not_its_content():
    shown = ft.invocation(
        {"files": {"k": {"content": "secret", "mode": "0600"}, "x": {"content": "s", "contnet": "t"}}}
    )
    assert shown["module_args"]["files"] == {
        "k": {"content": "(6 characters)", "mode": "0600"},
        "x": {"content": "(1 characters)", "contnet": "(1 characters)"},  # a misspelt key shows no text either
    }


def test_want_takes_a_mode_per_file():
    w = ft.want({"path": "/srv/t", "mode": "0640", "files": {"a": "x", "b": {"content": "y", "mode": "600"},
                 "c": {"content": "z"}, "d": {"content": "", "mode": None}}})  # fmt: skip
    assert w.files == {"a": b"x", "b": b"y", "c": b"z", "d": b""}
    assert w.modes == {"b": 0o600}
    assert [w.mode_of(rel) for rel in "abcd"] == [0o640, 0o600, 0o640, 0o640]


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*.nft", "main.nft", True),
        ("*.nft", "sub/main.nft", False),  # '*' does not cross '/'
        ("*", "a/b", False),
        ("*/*", "a/b", True),
        ("dns/*.conf", "dns/front.conf", True),
        ("dns/*.conf", "dns/a/b.conf", False),
        ("dns/*.conf", "other/front.conf", False),
        ("*.conf", "dns/front.conf", False),  # matched from the root, not from the right as PurePath.match does
        ("?.nft", "a.nft", True),
        ("?.nft", "ab.nft", False),
        ("[ab].nft", "b.nft", True),
        ("[!ab].nft", "b.nft", False),
        ("a?b", "a/b", False),
        ("*", ".hidden", True),
        ("*.NFT", "main.nft", False),  # case sensitive
        ("main.nft", "main.nft", True),
    ],
)
def test_patterns_match_one_component_at_a_time(pattern, name, expected):
    assert ft.matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "validate['']: a pattern must not be empty"),
        ("/etc/*.nft", "validate['/etc/*.nft']: must be relative to path"),
        ("**/*.nft", "validate['**/*.nft']: '**' is not supported"),
        ("a//b", "validate['a//b']: must not have '.', '..' or empty components"),
        ("./a", "validate['./a']: must not have"),
        ("a/", "validate['a/']: must not have"),
        ("a\nb", "validate['a\\nb']: contains a control character (U+000A)"),
        (5, "validate[5]: a pattern must be a string, not int"),
    ],
)
def test_bad_patterns_are_refused(pattern, message):
    with pytest.raises(ft.TreeError) as info:
        ft.check_pattern(pattern)
    assert str(info.value).startswith(message)


def test_commands_are_split_as_a_shell_would_and_percent_s_is_replaced_in_every_word():
    argv = ft.check_command("*.conf", "dnsmasq --test '--conf-file=%s' --other=\"a b\"")
    assert argv == ["dnsmasq", "--test", "--conf-file=%s", "--other=a b"]
    check = ft.Check("*.conf", "unused", ["sh", "-c", 'test -s "$1" && test -s %s', "sh", "%s"])
    assert check.argv_for("/tmp/x y/a.conf") == [
        "sh",
        "-c",
        'test -s "$1" && test -s /tmp/x y/a.conf',
        "sh",
        "/tmp/x y/a.conf",
    ]
    assert ft.check_command("*", "/usr/sbin/nft -c -f %s")[0] == "/usr/sbin/nft"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("nft -c -f", "the command 'nft -c -f' must contain %s (the file to check)"),
        ("", "the command '' must contain %s"),
        ("%s", "the program (the first word of '%s') must not be %s"),
        ("./check %s", "the program './check' must be a name looked up in PATH or an absolute path"),
        ("nft -f '%s", "cannot be split into words: No closing quotation"),
        ("nft -c -f %s\rx", "contains a control character (U+000D)"),
        (["nft", "%s"], "the command must be a string, not list"),
        (None, "the command must be a string, not NoneType"),
    ],
)
def test_bad_commands_are_refused(command, message):
    with pytest.raises(ft.TreeError) as info:
        ft.check_command("*.nft", command)
    assert str(info.value).startswith("validate['*.nft']: ") and message in str(info.value)


def test_every_bad_validate_entry_is_named_at_once():
    with pytest.raises(ft.TreeError) as info:
        ft.want({"path": "/t", "files": {}, "validate": {"/a": "x %s", "b": "x", "c": "%s"}})
    assert [m.split(":")[0] for m in str(info.value).split("; ")] == [
        "validate['/a']",
        "validate['b']",
        "validate['c']",
    ]


def test_jobs_are_the_written_files_a_pattern_matches_with_every_check(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    (root / "same.nft").write_text("same")
    (root / "mode.nft").write_text("mode")
    (root / "mode.nft").chmod(0o600)
    (root / "changed.nft").write_text("old")
    files = {"same.nft": "same", "mode.nft": "mode", "changed.nft": "new", "new/x.nft": "x", "new.conf": "c",
             "new.txt": "t"}  # fmt: skip
    validate = {"*.nft": "nft -c -f %s", "*.conf": "dnsmasq --test -C %s", "*/x.*": "test -s %s", "c*": "cat %s"}
    w = ft.want({"path": str(root), "files": files, "validate": validate})
    todo = ft.jobs(w, ft.plan(w, ft.have(w)))
    # the content is what a validator judges: mode.nft (a mode change only) and same.nft are not validated
    assert [(rel, [c.pattern for c in checks]) for rel, checks in todo] == [
        ("changed.nft", ["*.nft", "c*"]),
        ("new.conf", ["*.conf"]),
        ("new/x.nft", ["*/x.*"]),
    ]
    assert ft.jobs(ft.want({"path": str(root), "files": files}), ft.plan(w, ft.have(w))) == []


def test_long_output_is_cut():
    assert ft._quoted("stdout", "  \n") == ""
    assert ft._quoted("stderr", "error\n") == "; stderr: error"
    assert ft._quoted("stdout", "x" * 1500) == "; stdout: " + "x" * 1000 + " [... 500 more characters]"
