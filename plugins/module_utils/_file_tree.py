# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""Write a whole directory tree of text files in one task (module file_tree).

want(params) -> Want        validates every option; raises TreeError (pure, apart from the
                            user and group lookups)
have(want) -> Have          reads the tree with lstat, never through a symlink; raises
                            TreeError for anything in the way, before anything changes
plan(want, have) -> Plan    the operations, and the created / updated / removed lists
diff(want, have, plan)      the diff mode output, bounded (see make_diff)
jobs(want, plan)            the files to validate (written by the plan and matched by validate)
run_checks(want, jobs, module)
                            runs the validators on a private copy of the new tree, in check
                            mode too; raises TreeError for a refused file, changes nothing
apply(want, plan)           the one place that changes the file system
FileTree(module).run()      the module: want, have, plan, validate, apply unless in check mode

Names in the reports are relative to the root: files as given, directories with a
trailing '/', the root itself as './'.
"""

from __future__ import annotations

import fnmatch
import grp
import os
import pwd
import re
import shlex
import shutil
import stat
import tempfile

from ansible_collections.splitroute.vpn.plugins.module_utils._validate import Errors, type_name

PYCACHE = "__pycache__"
ROOT = "./"
# ansible-core's default max_diff_size: a larger file's content is not shown in the diff
MAX_DIFF = 104448
MAX_ERRORS = 20
# how much of a refusing validator's stdout and of its stderr the message quotes
MAX_OUTPUT = 1000
NAME_MAX = 255
PATH_MAX = 4095
_MODE = re.compile(r"0?[0-7]{3,4}\Z")
_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISREG, "a file"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class TreeError(ValueError):
    """Input or a tree this module must not change; the message is meant for the user."""


def kind_of(st_mode):
    for test, name in _KINDS:
        if test(st_mode):
            return name
    return "a special file"


def _bad_char(text):
    """What in TEXT may not be in a path: a control character or a lone surrogate (not UTF-8)."""
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return "a control character (U+%04X)" % code
        if 0xD800 <= code <= 0xDFFF:
            return "a lone surrogate (U+%04X), which is not UTF-8" % code
    return None


# ---- want ------------------------------------------------------------------------------------


def check_root(value):
    """The normalised root directory (no trailing '/'), or raise TreeError naming option path."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise TreeError("path: must be a string, not %s" % type_name(value))
    bad = _bad_char(value)
    if bad:
        raise TreeError("path: %r contains %s" % (value, bad))
    if not value.startswith("/"):
        raise TreeError("path: must be an absolute directory, not %r" % value)
    parts = value.rstrip("/").split("/")[1:]
    if not parts:
        raise TreeError("path: '/' itself cannot be the root of a tree")
    if any(part in ("", ".", "..") for part in parts):
        raise TreeError("path: %r must not have '.', '..' or empty components" % value)
    if any(len(part.encode("utf-8")) > NAME_MAX for part in parts):
        raise TreeError("path: %r has a component longer than %d bytes" % (value, NAME_MAX))
    return "/" + "/".join(parts)


def _show(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def entry_name(key):
    """How messages name the entry KEY of files: files['pkg/mod.py']."""
    return "files[%s]" % _show(key)


def check_key(key):
    """Raise TreeError unless KEY is a relative file name the tree may hold."""
    what = entry_name(key)
    if not isinstance(key, str):
        raise TreeError("%s: a file name must be a string, not %s" % (what, type_name(key)))
    bad = _bad_char(key)
    if bad:
        raise TreeError("%s: contains %s" % (what, bad))
    if not key:
        raise TreeError("files['']: a file name must not be empty")
    if key.startswith("/"):
        raise TreeError("%s: must be relative to path (no leading '/')" % what)
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise TreeError("%s: must not have '.', '..' or empty components (no '//' or trailing '/')" % what)
        if len(part.encode("utf-8")) > NAME_MAX:
            raise TreeError("%s: a component is longer than %d bytes" % (what, NAME_MAX))


def parse_mode(value, what):
    """An octal mode string ('0644', '644', '2755') as an int; numbers are refused (YAML reads 0644 as 420)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise TreeError(
            "%s: must be an octal string such as '0644' in quotes, not %s %r (YAML reads an unquoted 0644 as "
            "the number 420)" % (what, type_name(value), value)
        )
    if not _MODE.match(value):
        raise TreeError("%s: %r is not an octal mode of 3 or 4 digits 0-7 such as '0644'" % (what, value))
    return int(value, 8)


def resolve_id(value, what, lookup, kind):
    """A uid or gid from a name or a number (as a string, the way AnsibleModule gives a str option)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TreeError("%s: must be a %s name or a number, not %s" % (what, kind, type_name(value)))
    text = str(value)
    if text.isascii() and text.isdigit():
        number = int(text)
        if number >= 2**32 - 1:
            raise TreeError("%s: %s is not a valid %s id" % (what, text, kind))
        return number
    try:
        return lookup(text)[2]
    except KeyError:
        raise TreeError("%s: no such %s %r on this host" % (what, kind, text)) from None


def pattern_name(pattern):
    """How messages name the entry PATTERN of validate: validate['*.nft']."""
    return "validate[%s]" % _show(pattern)


def check_pattern(pattern):
    """Raise TreeError unless PATTERN is a glob that can match a name of files."""
    what = pattern_name(pattern)
    if not isinstance(pattern, str):
        raise TreeError("%s: a pattern must be a string, not %s" % (what, type_name(pattern)))
    bad = _bad_char(pattern)
    if bad:
        raise TreeError("%s: contains %s" % (what, bad))
    if not pattern:
        raise TreeError("validate['']: a pattern must not be empty")
    if pattern.startswith("/"):
        raise TreeError("%s: must be relative to path, as the names of files are (no leading '/')" % what)
    if "**" in pattern:
        raise TreeError("%s: '**' is not supported: '*' never matches '/', write one pattern per depth" % what)
    if any(part in ("", ".", "..") for part in pattern.split("/")):
        raise TreeError("%s: must not have '.', '..' or empty components, which no name has" % what)


def matches(pattern, rel):
    """Whether the file name REL matches PATTERN: component by component with fnmatch's rules (case
    sensitive), so '*', '?' and '[...]' never match a '/' and 'dns/*.conf' does not match 'dns/a/b.conf'."""
    parts, names = pattern.split("/"), rel.split("/")
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(n, p) for p, n in zip(parts, names))


def check_command(pattern, command):
    """The argument vector of COMMAND (validate[PATTERN]), or raise TreeError."""
    what = pattern_name(pattern)
    if isinstance(command, bool) or not isinstance(command, str):
        raise TreeError("%s: the command must be a string, not %s" % (what, type_name(command)))
    bad = _bad_char(command)
    if bad:
        raise TreeError("%s: the command %s contains %s" % (what, _show(command), bad))
    if "%s" not in command:
        raise TreeError("%s: the command %s must contain %%s (the file to check)" % (what, _show(command)))
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise TreeError("%s: the command %s cannot be split into words: %s" % (what, _show(command), exc)) from None
    program = argv[0] if argv else ""
    if "%s" in program:
        raise TreeError("%s: the program (the first word of %s) must not be %%s" % (what, _show(command)))
    if "/" in program and not program.startswith("/"):
        raise TreeError(
            "%s: the program %s must be a name looked up in PATH or an absolute path" % (what, _show(program))
        )
    return argv


class Check:
    """One entry of validate: a pattern and the command that validates the files it matches."""

    __slots__ = ("argv", "command", "pattern")

    def __init__(self, pattern, command, argv):
        self.pattern = pattern
        self.command = command
        self.argv = argv

    def argv_for(self, path):
        return [self.argv[0]] + [arg.replace("%s", path) for arg in self.argv[1:]]


class Want:
    __slots__ = ("checks", "dir_mode", "dirs", "exclusive", "files", "gid", "mode", "modes", "root", "state", "uid")

    def __init__(self, root, state, files, dirs, mode, dir_mode, uid, gid, exclusive, modes=None, checks=()):
        self.root = root
        self.state = state
        self.files = files  # relative name -> bytes
        self.dirs = dirs  # sorted relative directory names, '' (the root) first
        self.mode = mode
        self.dir_mode = dir_mode
        self.uid = uid
        self.gid = gid
        self.exclusive = exclusive
        self.modes = modes or {}  # relative name -> the file's own mode, for the files that give one
        self.checks = list(checks)  # [Check], sorted by pattern

    def full(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def mode_of(self, rel):
        """The mode the file REL gets: its own, or the option mode."""
        return self.modes.get(rel, self.mode)


_FILE_KEYS = ("content", "mode")


def _file_value(value, what, modes, key):
    """The content (a str) of the files entry VALUE: a string, or {content: ..., mode: ...} whose mode
    goes to MODES[KEY]. Raises TreeError."""
    if isinstance(value, dict):
        unknown = sorted((k for k in value if k not in _FILE_KEYS), key=str)
        if unknown:
            raise TreeError(
                "%s: unknown key %s; a file is a string or a dictionary with content and optionally mode"
                % (what, ", ".join(_show(k) for k in unknown))
            )
        if "content" not in value:
            raise TreeError("%s: the dictionary has no content (write content: \"\" for an empty file)" % what)
        if value.get("mode") is not None:
            modes[key] = parse_mode(value["mode"], "%s.mode" % what)
        value = value["content"]
    if isinstance(value, bool) or not isinstance(value, str):
        kind = "null (write \"\" for an empty file)" if value is None else type_name(value)
        raise TreeError("%s: the content must be a string, not %s" % (what, kind))
    return value


def want(params):
    """Validate PARAMS (the module's options) into a Want; raises TreeError with every problem found."""
    root = check_root(params.get("path"))
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise TreeError("state: must be present or absent, not %r" % (state,))
    if state == "absent":
        return Want(root, state, {}, [], None, None, None, None, False)
    errors = Errors(TreeError, MAX_ERRORS)
    files = {}
    modes = {}
    dirs = {""}
    raw = params.get("files")
    if not isinstance(raw, dict):
        raise TreeError("files: must be a dictionary of file name: content, not %s" % type_name(raw))
    for key in sorted(raw, key=str):
        what = entry_name(key)
        try:
            check_key(key)
            content = _file_value(raw[key], what, modes, key)
            if len(root.encode("utf-8")) + 1 + len(key.encode("utf-8")) > PATH_MAX:
                raise TreeError("%s: the whole path is longer than %d bytes" % (what, PATH_MAX))
            try:
                data = content.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TreeError("%s: the content is not valid text (%s)" % (what, exc.reason)) from None
        except TreeError as exc:
            errors.add(str(exc))
            continue
        files[key] = data
        parts = key.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for key in sorted(set(files) & dirs):
        inner = min(k for k in files if k.startswith(key + "/"))
        errors.add("%s: is a file, but %s needs a directory there" % (entry_name(key), entry_name(inner)))
    tree_modes = []
    for option, default in (("mode", "0644"), ("directory_mode", "0755")):
        value = params.get(option)
        try:
            tree_modes.append(parse_mode(default if value is None else value, option))
        except TreeError as exc:
            errors.add(str(exc))
    ids = []
    for option, lookup, kind in (("owner", pwd.getpwnam, "user"), ("group", grp.getgrnam, "group")):
        value = params.get(option)
        try:
            ids.append(resolve_id("root" if value is None else value, option, lookup, kind))
        except TreeError as exc:
            errors.add(str(exc))
    exclusive = params.get("exclusive", False)
    if not isinstance(exclusive, bool):
        errors.add("exclusive: must be true or false, not %r" % (exclusive,))
    checks = _checks(params.get("validate"), errors)
    errors.raise_if_any()
    return Want(
        root, state, files, sorted(dirs), tree_modes[0], tree_modes[1], ids[0], ids[1], exclusive, modes, checks
    )


def _checks(raw, errors):
    """The validate option as [Check] sorted by pattern; its problems go to ERRORS."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        errors.add("validate: must be a dictionary of pattern: command, not %s" % type_name(raw))
        return []
    checks = []
    for pattern in sorted(raw, key=str):
        try:
            check_pattern(pattern)
            checks.append(Check(pattern, raw[pattern], check_command(pattern, raw[pattern])))
        except TreeError as exc:
            errors.add(str(exc))
    return checks


# ---- have ------------------------------------------------------------------------------------


class Entry:
    __slots__ = ("content", "gid", "mode", "size", "uid")

    def __init__(self, st, content=None):
        self.mode = stat.S_IMODE(st.st_mode)
        self.uid = st.st_uid
        self.gid = st.st_gid
        self.size = st.st_size
        self.content = content  # bytes of a file whose size is the wanted one, else None


class Have:
    __slots__ = ("entries", "everything", "strays")

    def __init__(self):
        self.entries = {}  # relative name ('' is the root) -> Entry, for the wanted names that exist
        self.strays = []  # [(relative name, is a directory)]: what exclusive removes, children first
        self.everything = []  # state=absent: every name under the root, report style


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TreeError("cannot look at %s: %s" % (path, exc.strerror or exc)) from None


def _read(path):
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise TreeError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _owner_key(rel, w):
    """The files[...] entry that REL (a wanted directory or file) is there for, for messages."""
    if rel in w.files:
        return rel
    return min(k for k in w.files if k.startswith(rel + "/"))


def have(w, check_mode=False):
    """Read what is at the wanted names (and, with exclusive, everything else under the root).

    A missing parent of the root is refused, except in CHECK_MODE: there an earlier task of the
    same run (in check mode too) may be what would have made it, so the whole tree would be created.

    Raises TreeError for a symlink at or above a wanted name, a file where a directory must go, a
    directory where a file must go, and anything that is neither a file nor a directory."""
    h = Have()
    errors = Errors(TreeError, MAX_ERRORS)
    root_st = _lstat(w.root)
    if root_st is None:
        parent = os.path.dirname(w.root)
        if w.state == "present" and not check_mode and not os.path.isdir(parent):
            raise TreeError("path: the parent directory %s does not exist" % parent)
        return h
    if not stat.S_ISDIR(root_st.st_mode):
        raise TreeError("path: %s is %s, not a directory; nothing was changed" % (w.root, kind_of(root_st.st_mode)))
    if w.state == "absent":
        h.everything = _everything(w.root)
        return h
    h.entries[""] = Entry(root_st)
    for rel in w.dirs[1:]:
        if os.path.dirname(rel) not in h.entries:
            continue  # its parent is missing (or in the way, which is reported already)
        full = w.full(rel)
        st = _lstat(full)
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            errors.add(
                "%s: %s is %s where a directory must go%s"
                % (entry_name(_owner_key(rel, w)), full, kind_of(st.st_mode), _symlink_hint(st))
            )
            continue
        h.entries[rel] = Entry(st)
    for rel, data in w.files.items():
        if os.path.dirname(rel) not in h.entries:
            continue
        full = w.full(rel)
        st = _lstat(full)
        if st is None:
            continue
        if not stat.S_ISREG(st.st_mode):
            errors.add("%s: %s is %s, not a file%s" % (entry_name(rel), full, kind_of(st.st_mode), _symlink_hint(st)))
            continue
        h.entries[rel] = Entry(st, _read(full) if st.st_size == len(data) else None)
    errors.raise_if_any()
    if w.exclusive:
        _strays(w, "", h, errors)
        errors.raise_if_any()
    return h


def _symlink_hint(st):
    if stat.S_ISLNK(st.st_mode):
        return " (the module never writes through a symlink nor replaces one in the way: remove it first)"
    return " (remove it first)"


def _scan(path):
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda entry: entry.name)
    except OSError as exc:
        raise TreeError("cannot list %s: %s" % (path, exc.strerror or exc)) from None


def _strays(w, rel_dir, h, errors):
    """Append the removable names under REL_DIR to h.strays (children before their directory).
    Returns whether anything stays in REL_DIR."""
    keeps = False
    for entry in _scan(w.full(rel_dir)):
        rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if entry.name == PYCACHE:
                keeps = True  # Python's bytecode cache: never touched (see the module's notes)
            elif rel in h.entries:
                _strays(w, rel, h, errors)
                keeps = True
            elif _strays(w, rel, h, errors):
                keeps = True
            else:
                h.strays.append((rel, True))
        elif rel in w.files:
            keeps = True
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            h.strays.append((rel, False))
        else:
            errors.add(
                "exclusive: %s is %s; only files, symlinks and directories are removed: remove it first"
                % (w.full(rel), kind_of(st.st_mode))
            )
            keeps = True
    return keeps


def _everything(root):
    """Every name under ROOT (report style), for state=absent; symlinks are not followed."""
    names = [ROOT]
    for top, dirnames, filenames in os.walk(root, followlinks=False):
        rel_top = os.path.relpath(top, root)
        for name in dirnames + filenames:
            rel = name if rel_top == "." else os.path.join(rel_top, name)
            is_dir = name in dirnames and not os.path.islink(os.path.join(top, name))
            names.append(rel + "/" if is_dir else rel)
    return sorted(names)


# ---- plan ------------------------------------------------------------------------------------


def report_name(rel, is_dir):
    if not rel:
        return ROOT
    return rel + "/" if is_dir else rel


class Plan:
    __slots__ = ("created", "ops", "removed", "updated")

    def __init__(self):
        self.ops = []  # [(operation, relative name)] in the order apply() runs them
        self.created = []
        self.updated = []
        self.removed = []


def plan(w, h):
    p = Plan()
    if w.state == "absent":
        if h.everything:
            p.ops.append(("rmtree", ""))
            p.removed = list(h.everything)
        return p
    for rel in w.dirs:
        entry = h.entries.get(rel)
        if entry is None:
            p.ops.append(("mkdir", rel))
            p.created.append(report_name(rel, True))
        elif (entry.mode, entry.uid, entry.gid) != (w.dir_mode, w.uid, w.gid):
            p.ops.append(("chattr", rel))
            p.updated.append(report_name(rel, True))
    for rel, data in w.files.items():
        entry = h.entries.get(rel)
        if entry is None:
            p.ops.append(("write", rel))
            p.created.append(rel)
        elif entry.content != data:
            p.ops.append(("write", rel))
            p.updated.append(rel)
        elif (entry.mode, entry.uid, entry.gid) != (w.mode_of(rel), w.uid, w.gid):
            p.ops.append(("chattr", rel))
            p.updated.append(rel)
    for rel, is_dir in h.strays:
        p.ops.append(("rmdir" if is_dir else "unlink", rel))
        p.removed.append(report_name(rel, is_dir))
    p.created.sort()
    p.updated.sort()
    p.removed.sort()
    return p


# ---- diff ------------------------------------------------------------------------------------


def _meta_changes(entry, mode, uid, gid):
    changes = []
    if entry.mode != mode:
        changes.append("mode %04o -> %04o" % (entry.mode, mode))
    if entry.uid != uid:
        changes.append("owner %d -> %d" % (entry.uid, uid))
    if entry.gid != gid:
        changes.append("group %d -> %d" % (entry.gid, gid))
    return changes


def make_diff(w, h, p):
    """A list of Ansible diffs, one per changed name.

    A changed file's content is a before/after diff, unless either side is larger than MAX_DIFF bytes or
    the old content is not UTF-8 (then one line says so). A created file or directory is one line
    ('created NAME (N bytes)'), not its content, so a first install does not print the whole tree. A
    mode or owner change, and each removed name, is one line."""
    out = []
    if w.state == "absent":
        if p.removed:
            out.append({"prepared": "removed %s and everything in it:\n%s" % (w.root, _lines(p.removed))})
        return out
    for op, rel in p.ops:
        full = w.full(rel)
        entry = h.entries.get(rel)
        if op == "mkdir":
            out.append({"prepared": "created directory %s/ (mode %04o)\n" % (full.rstrip("/"), w.dir_mode)})
        elif op == "chattr":
            mode = w.mode_of(rel) if rel in w.files else w.dir_mode
            changes = _meta_changes(entry, mode, w.uid, w.gid)
            out.append({"prepared": "%s%s: %s\n" % (full, "" if rel in w.files else "/", ", ".join(changes))})
        elif op == "write" and entry is None:
            out.append({"prepared": "created %s (%d bytes, mode %04o)\n" % (full, len(w.files[rel]), w.mode_of(rel))})
        elif op == "write":
            out.append(_content_diff(full, entry, w.files[rel]))
            changes = _meta_changes(entry, w.mode_of(rel), w.uid, w.gid)
            if changes:
                out[-1]["prepared"] = "%s: %s\n" % (full, ", ".join(changes))
        elif op in ("unlink", "rmdir"):
            out.append({"prepared": "removed %s%s\n" % (full, "/" if op == "rmdir" else "")})
    return out


def _lines(names):
    return "".join("  %s\n" % name for name in names)


def _content_diff(full, entry, after):
    diff = {"before_header": full, "after_header": full}
    if max(entry.size, len(after)) > MAX_DIFF:
        diff["prepared"] = "%s: content changed (%d -> %d bytes), not shown: larger than %d bytes\n" % (
            full,
            entry.size,
            len(after),
            MAX_DIFF,
        )
        return diff
    before = _read(full) if entry.content is None else entry.content
    try:
        diff["before"] = before.decode("utf-8")
    except UnicodeDecodeError:
        diff["prepared"] = "%s: content changed (%d -> %d bytes), not shown: the old content is not UTF-8\n" % (
            full,
            len(before),
            len(after),
        )
        return diff
    diff["after"] = after.decode("utf-8")
    return diff


# ---- validate: before the first change, in check mode too --------------------------------------


def jobs(w, p):
    """[(name, [Check])]: each file P writes (created, or its content changed) that a pattern of validate
    matches, with every Check whose pattern matches it, in name order. A file whose only change is its mode
    or owner keeps the content it has, and is not validated again."""
    if not w.checks:
        return []
    todo = []
    for rel in sorted(rel for op, rel in p.ops if op == "write"):
        checks = [check for check in w.checks if matches(check.pattern, rel)]
        if checks:
            todo.append((rel, checks))
    return todo


def _names(rels):
    return ", ".join(entry_name(rel) for rel in rels)


def _quoted(stream, text):
    text = text.strip()
    if not text:
        return ""
    if len(text) > MAX_OUTPUT:
        text = "%s [... %d more characters]" % (text[:MAX_OUTPUT], len(text) - MAX_OUTPUT)
    return "; %s: %s" % (stream, text)


def _copy_tree(w, base):
    """The whole tree as it will be, in a new private directory under BASE (files 0600, directories 0700)."""
    top = tempfile.mkdtemp(prefix="file_tree-validate-", dir=base)
    try:
        for rel in w.dirs[1:]:
            os.mkdir(os.path.join(top, rel), 0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for rel, data in w.files.items():
            with os.fdopen(os.open(os.path.join(top, rel), flags, 0o600), "wb") as fh:
                fh.write(data)
    except BaseException:
        shutil.rmtree(top, ignore_errors=True)
        raise
    return top


_SEARCHED = "not in PATH, /sbin, /usr/sbin nor /usr/local/sbin"  # where get_bin_path looks


def run_checks(w, todo, module):
    """Run the validators of TODO (from jobs()); returns (the names validated, warnings).

    Raises TreeError naming every file a validator refused and, unless in check mode, every validator that
    is not installed; in check mode a missing validator is a warning and its files are not validated (a
    new host has no packages yet). Nothing of the tree is changed: the validators read a copy of the whole
    tree as it will be (_copy_tree) in a private directory under the module's temporary directory, removed
    before this returns. Each command runs without a shell, with %s replaced by the absolute path of its
    file's copy, in that copy's directory, so a path relative to the working directory (nft's
    include "./sets.nft") reads the tree's new files. MODULE gives get_bin_path, run_command, tmpdir and
    check_mode."""
    errors = Errors(TreeError, MAX_ERRORS)
    warnings = []
    programs = {}  # pattern -> the program's path, None when it is not installed
    for check in sorted({c for _rel, checks in todo for c in checks}, key=lambda c: c.pattern):
        programs[check.pattern] = module.get_bin_path(check.argv[0])
        if programs[check.pattern] is None:
            rels = _names(rel for rel, checks in todo if check in checks)
            where = "no such executable file" if check.argv[0].startswith("/") else _SEARCHED
            missing = "%s: %s is not installed on this host (%s)" % (
                pattern_name(check.pattern),
                _show(check.argv[0]),
                where,
            )
            if module.check_mode:
                warnings.append(
                    "%s; not validated in check mode: %s (a run that is not in check mode fails unless it is "
                    "installed by then)" % (missing, rels)
                )
            else:
                errors.add("%s; it must validate %s" % (missing, rels))
    validated = []
    runnable = [(rel, checks) for rel, checks in todo if any(programs[c.pattern] for c in checks)]
    if runnable:
        try:
            top = _copy_tree(w, module.tmpdir)
        except OSError as exc:
            raise TreeError(
                "cannot write the copy of the tree to validate under %s: %s" % (module.tmpdir, exc.strerror or exc)
            ) from None
        try:
            for rel, checks in runnable:
                if _run_one(rel, checks, programs, os.path.join(top, rel), module, errors):
                    validated.append(rel)
        finally:
            shutil.rmtree(top, ignore_errors=True)
    errors.raise_if_any()
    return validated, warnings


def _run_one(rel, checks, programs, copy, module, errors):
    """Run every check of the file REL on its COPY; whether each ran and accepted it."""
    ok = True
    for check in checks:
        program = programs[check.pattern]
        if program is None:
            ok = False
            continue
        argv = [program] + check.argv_for(copy)[1:]
        what = "%s: %s" % (pattern_name(check.pattern), _show(check.command))
        try:
            rc, out, err = module.run_command(
                argv, cwd=os.path.dirname(copy), expand_user_and_vars=False, errors="replace", handle_exceptions=False
            )
        except OSError as exc:
            errors.add("%s could not run for %s: %s" % (what, entry_name(rel), exc.strerror or exc))
            ok = False
            continue
        if rc != 0:
            errors.add(
                "%s refused the new content of %s (exit status %s)%s%s"
                % (what, entry_name(rel), rc, _quoted("stdout", out), _quoted("stderr", err))
            )
            ok = False
    return ok


# ---- apply: the one place that writes ---------------------------------------------------------


def _open_nofollow(path, directory):
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if directory:
        flags |= getattr(os, "O_DIRECTORY", 0)
    return os.open(path, flags)


def _set_attributes(fd, mode, uid, gid):
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(fd, uid, gid)
    os.fchmod(fd, mode)  # after fchown, which may clear set-id bits


def _write(full, data, mode, w):
    directory, name = os.path.split(full)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % name[:200], suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            _set_attributes(fh.fileno(), mode, w.uid, w.gid)
            os.fsync(fh.fileno())
        os.rename(tmp, full)  # replaces a file, never follows a symlink
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _chattr(full, mode, w, directory):
    fd = _open_nofollow(full, directory)
    try:
        _set_attributes(fd, mode, w.uid, w.gid)
    finally:
        os.close(fd)


def _fsync_dir(path):
    try:
        fd = _open_nofollow(path, True)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply(w, p):
    """Run P's operations. Each file is written to a temporary file in its directory, given its
    mode and owner, flushed to disk and renamed into place; the directories that changed are
    flushed at the end."""
    changed_dirs = set()
    for op, rel in p.ops:
        full = w.full(rel)
        if op == "rmtree":
            shutil.rmtree(full)  # on Linux fd based: never follows a symlink out of the tree
            changed_dirs.add(os.path.dirname(full))
        elif op == "mkdir":
            os.mkdir(full, 0o700)
            _chattr(full, w.dir_mode, w, True)
            changed_dirs.add(os.path.dirname(full))
        elif op == "chattr":
            is_file = rel in w.files
            _chattr(full, w.mode_of(rel) if is_file else w.dir_mode, w, not is_file)
        elif op == "write":
            _write(full, w.files[rel], w.mode_of(rel), w)
            changed_dirs.add(os.path.dirname(full))
        elif op == "unlink":
            os.unlink(full)
            changed_dirs.add(os.path.dirname(full))
        elif op == "rmdir":
            os.rmdir(full)
            changed_dirs.add(os.path.dirname(full))
    for path in sorted(changed_dirs):
        _fsync_dir(path)


# ---- the module ------------------------------------------------------------------------------


def _size(value):
    return "(%d characters)" % len(value) if isinstance(value, str) else "(%s)" % type_name(value)


def _shown_file(value):
    """A files entry as it may be shown: the content (and any unknown key's value) as its size, a mode as
    it is."""
    if not isinstance(value, dict):
        return _size(value)
    return {key: item if key == "mode" and isinstance(item, (str, int)) else _size(item) for key, item in value.items()}


def invocation(params):
    """The module's arguments as they may be shown: each file's content replaced by its size."""
    shown = dict(params)
    files = params.get("files")
    if isinstance(files, dict):
        shown["files"] = {key: _shown_file(value) for key, value in files.items()}
    return {"module_args": shown}


def _leaves(value):
    """The texts AnsibleModule takes from a no_log VALUE (its strings and numbers, at any depth)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, (bytes, str)):
        if value:
            yield value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield str(value)


class FileTree:
    """have / want / plan for one directory tree; apply() is the only place that writes.

    The module's files option is no_log, so that AnsibleModule does not write every content to the host's
    journal when it logs its arguments. A no_log value is also masked wherever it occurs in the result,
    the diff included (an empty line or a one-character file would mask that text everywhere). Nothing in
    the result holds a content except the diff, and the invocation shows sizes instead (invocation()), so
    once the arguments are logged the contents are taken out of the masked values again (a files entry's
    mode too, so that the diff's 'mode 0644 -> 0600' stays readable). A validator that refuses a file is
    quoted in the failure as it printed, like ansible.builtin.template's validate: a line it echoes is
    shown, never a content the module put there itself.

    The validators run (run_checks) after plan and before apply, in check mode too."""

    def __init__(self, module):
        self.module = module
        module.no_log_values.difference_update(_leaves(module.params.get("files")))

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, invocation=invocation(self.module.params), **kwargs)

    def run(self):
        params = self.module.params
        try:
            w = want(params)
        except TreeError as exc:
            self.fail("invalid input, nothing was changed: %s" % exc, path=params.get("path"))
        try:
            h = have(w, self.module.check_mode)
        except TreeError as exc:
            self.fail("nothing was changed: %s" % exc, path=w.root)
        p = plan(w, h)
        result = {
            "changed": bool(p.ops),
            "path": w.root,  # AnsibleModule adds its state (directory or absent), owner, group, mode
            "created": p.created,
            "updated": p.updated,
            "removed": p.removed,
            "validated": [],
        }
        if self.module._diff:
            try:
                result["diff"] = make_diff(w, h, p)
            except TreeError as exc:
                self.fail("nothing was changed: %s" % exc, path=w.root)
        todo = jobs(w, p)
        if todo:
            try:
                result["validated"], warnings = run_checks(w, todo, self.module)
            except TreeError as exc:
                self.fail("nothing was changed: %s" % exc, path=w.root)
            for warning in warnings:
                self.module.warn(warning)
        if p.ops and not self.module.check_mode:
            try:
                apply(w, p)
            except OSError as exc:
                self.fail(
                    "writing the tree failed part way, run the task again: %s: %s"
                    % (exc.filename or w.root, exc.strerror or exc),
                    **{k: v for k, v in result.items() if k != "diff"},
                )
        self.module.exit_json(invocation=invocation(params), **result)
