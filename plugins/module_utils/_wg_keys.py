# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""WireGuard private keys on the host and their public keys, in one task (module wireguard_keys).

want(params) -> Want            validates every option (pure); raises KeysError
have(want) -> Have              reads the directory and each key file with lstat, never through a
                                symlink, and which interfaces exist; raises KeysError for a file
                                that holds no key and for anything in the way
plan(want, have) -> Plan        the operations, the created / updated / loaded lists and the public
                                keys that can be known before anything is written
make_diff(want, have, plan)     the diff mode output: file names and attributes, never a key
apply(want, plan, generated, load)
                                the one place that writes: the directory, the key files (atomic),
                                then `wg set NAME private-key FILE` into the running interfaces
WireguardKeys(module).run()     the module: want, have, plan, apply unless in check mode

The key math is _x25519's (pure Python), so the keys can be made before wireguard-tools is
installed; `wg` is only needed to load a new key into an interface that exists, and an
interface exists only where wireguard-tools is.

No private key leaves this file: every key it reads, is given or makes is added to the
module's no_log values (masked in anything the module returns), and no message holds one.
"""

from __future__ import annotations

import os
import socket
import stat
import tempfile

from ansible_collections.splitroute.vpn.plugins.module_utils import _x25519
from ansible_collections.splitroute.vpn.plugins.module_utils._file_tree import _open_nofollow, kind_of
from ansible_collections.splitroute.vpn.plugins.module_utils._validate import Errors, check_ifname, type_name

DIRECTORY = "/etc/wireguard"
DIR_MODE = 0o700
KEY_MODE = 0o600
UID = 0
GID = 0
MAX_ERRORS = 20
# a key file holds 44 characters and a newline; wg also takes trailing white space
MAX_READ = 4096
_SPACE = b" \t\n\r\v\f"  # what wg skips after the key in a key file


class KeysError(ValueError):
    """Input or a state this module must not change; the message is meant for the user and never
    holds a key."""


# ---- want ------------------------------------------------------------------------------------


def check_directory(value):
    """The normalised key directory (no trailing '/'), or raise KeysError naming option directory."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise KeysError("directory: must be a string, not %s" % type_name(value))
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value):
        raise KeysError("directory: %r contains a control character" % value)
    if not value.startswith("/"):
        raise KeysError("directory: must be an absolute path, not %r" % value)
    parts = value.rstrip("/").split("/")[1:]
    if not parts:
        raise KeysError("directory: '/' itself cannot hold the keys")
    if any(part in ("", ".", "..") for part in parts):
        raise KeysError("directory: %r must not have '.', '..' or empty components" % value)
    return "/" + "/".join(parts)


def _given(value):
    """None and "" mean "no key given": generate one on the host when the file is missing."""
    return not (value is None or (isinstance(value, str) and value == ""))


class Want:
    __slots__ = ("directory", "given", "names")

    def __init__(self, directory, names, given):
        self.directory = directory
        self.names = names  # interface names, in the order of the keys option
        self.given = given  # name -> the given private key (base64), for the names that have one

    def path(self, name):
        return "%s/%s.key" % (self.directory, name)


def want(params):
    """Validate every option at once; KeysError lists every problem (never a key's value)."""
    errors = Errors(KeysError, MAX_ERRORS)
    directory = None
    try:
        directory = check_directory(params.get("directory", DIRECTORY))
    except KeysError as exc:
        errors.add(str(exc))
    state = params.get("state", "present")
    if state != "present":
        errors.add("state: must be present, not %r" % (state,))
    keys = params.get("keys")
    if not isinstance(keys, list):
        errors.add("keys: must be a list, not %s" % type_name(keys))
        keys = []
    names, given, seen = [], {}, {}
    for index, item in enumerate(keys):
        where = "keys[%d]" % index
        if not isinstance(item, dict):
            errors.add("%s: must be a dictionary with name and private_key, not %s" % (where, type_name(item)))
            continue
        name = item.get("name")
        error = check_ifname(name, "%s.name: interface name" % where)
        if error:
            errors.add(error)
            name = None
        elif name in seen:
            errors.add(
                "%s.name: %r is given twice (also keys[%d]): one key file per interface" % (where, name, seen[name])
            )
            name = None
        else:
            seen[name] = index
            names.append(name)
        key = item.get("private_key")
        if _given(key):
            label = "%s.private_key%s" % (where, " (%s)" % name if name else "")
            if not isinstance(key, str):
                errors.add("%s: must be a string, not %s" % (label, type_name(key)))
            elif _x25519.decode_key(key) is None:
                errors.add(
                    "%s: not a WireGuard private key (44 characters of base64 of 32 bytes, as `wg genkey` prints "
                    "it, without spaces or a newline); the value is not shown" % label
                )
            elif name:
                given[name] = key
    errors.raise_if_any()
    return Want(directory, names, given)


# ---- have ------------------------------------------------------------------------------------


def parse_key_file(data):
    """(key, problem) for the bytes DATA of a key file, as wg reads one: the key, then nothing but
    white space. An empty (or white space only) file is (None, None): it holds no key, wg reads it
    as none. Anything else is (None, a description that does not hold the content)."""
    if not data.strip(_SPACE):
        return None, None
    head, tail = data[: _x25519.KEY_CHARS], data[_x25519.KEY_CHARS :]
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is None or _x25519.decode_key(text) is None or tail.strip(_SPACE):
        return None, "holds no WireGuard private key (%d bytes that are not one key of 44 base64 characters)" % len(
            data
        )
    return text, None


class Entry:
    """An existing key file: its attributes, its content and the key it holds (None when empty)."""

    __slots__ = ("content", "gid", "ino", "key", "mode", "uid")

    def __init__(self, st, content, key):
        self.mode = stat.S_IMODE(st.st_mode)
        self.uid = st.st_uid
        self.gid = st.st_gid
        self.ino = st.st_ino
        self.content = content
        self.key = key


class Have:
    __slots__ = ("dir_gid", "dir_mode", "dir_uid", "directory", "entries", "interfaces")

    def __init__(self):
        self.directory = False  # whether the directory exists
        self.dir_mode = self.dir_uid = self.dir_gid = None
        self.entries = {}  # name -> Entry, for the key files that exist
        self.interfaces = set()  # the names whose interface exists in this network namespace

    def secrets(self):
        """Every private key read from the files."""
        return [entry.key for entry in self.entries.values() if entry.key]


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeysError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def _read_file(path):
    """The first MAX_READ + 1 bytes of the regular file PATH, never through a symlink."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeysError("%s is %s, not a file (remove it first)" % (path, kind_of(st.st_mode)))
        chunks, size = [], 0
        while size <= MAX_READ:
            chunk = os.read(fd, MAX_READ + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return st, b"".join(chunks)
    finally:
        os.close(fd)


def interface_exists(name):
    """Whether the interface NAME exists in this process's network namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def have(w, exists=interface_exists):
    """Read the directory, every key file and which interfaces exist; KeysError lists every key file
    that holds no key, every symlink or other thing in the way, before anything is changed."""
    h = Have()
    errors = Errors(KeysError, MAX_ERRORS)
    st = _lstat(w.directory)
    if st is None:
        parent = os.path.dirname(w.directory)
        if not os.path.isdir(parent):
            raise KeysError("directory: the parent directory %s does not exist" % parent)
    elif not stat.S_ISDIR(st.st_mode):
        hint = " (the module never writes through a symlink: remove it)" if stat.S_ISLNK(st.st_mode) else ""
        raise KeysError("directory: %s is %s, not a directory%s" % (w.directory, kind_of(st.st_mode), hint))
    else:
        h.directory = True
        h.dir_mode, h.dir_uid, h.dir_gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    for name in w.names:
        if exists(name):
            h.interfaces.add(name)
        if not h.directory:
            continue
        path = w.path(name)
        try:
            st = _lstat(path)
            if st is None:
                continue
            if not stat.S_ISREG(st.st_mode):
                errors.add(
                    "%s: %s is %s, not a key file (the module never writes through a symlink nor replaces "
                    "anything but a key file: remove it first)" % (name, path, kind_of(st.st_mode))
                )
                continue
            st, data = _read_file(path)
        except KeysError as exc:
            errors.add("%s: %s" % (name, exc))
            continue
        except OSError as exc:
            errors.add("%s: cannot read %s: %s" % (name, path, exc.strerror or exc))
            continue
        key, problem = parse_key_file(data)
        if problem:
            errors.add(
                "%s: %s %s; a key someone may depend on is never replaced: put the right key in it or "
                "remove it" % (name, path, problem)
            )
            continue
        h.entries[name] = Entry(st, data, key)
    errors.raise_if_any()
    return h


# ---- plan ------------------------------------------------------------------------------------


class Plan:
    __slots__ = ("created", "dir_op", "generate", "loads", "ops", "public_keys", "updated")

    def __init__(self):
        self.dir_op = None  # "mkdir" or "chattr" for the directory, or None
        self.ops = []  # [(operation, name)]: "write" (the given key), "generate", "chattr"
        self.generate = []  # the names whose key is made on the host
        self.loads = []  # the interfaces that take their new key (wg set)
        self.created = []
        self.updated = []
        self.public_keys = {}  # name -> public key, for the keys known before anything is written

    @property
    def changed(self):
        return bool(self.dir_op or self.ops)


def _attrs_wrong(entry):
    return (entry.mode, entry.uid, entry.gid) != (KEY_MODE, UID, GID)


def content_of(key):
    """A key file's content: the key and a newline, as `wg genkey > FILE` writes it."""
    return (key + "\n").encode("ascii")


def plan(w, h):
    p = Plan()
    if not h.directory:
        p.dir_op = "mkdir"
    elif (h.dir_mode, h.dir_uid, h.dir_gid) != (DIR_MODE, UID, GID):
        p.dir_op = "chattr"
    for name in w.names:
        entry = h.entries.get(name)
        given = w.given.get(name)
        old = entry.key if entry else None  # an empty file holds no key, as a missing one
        if old is None:
            p.ops.append(("write" if given else "generate", name))
            p.created.append(name)
            if not given:
                p.generate.append(name)
        elif given and given != old:
            p.ops.append(("write", name))
            p.updated.append(name)
        elif given and entry.content != content_of(given):
            p.ops.append(("write", name))  # the same key, written as key and newline
            p.updated.append(name)
        elif _attrs_wrong(entry):
            p.ops.append(("chattr", name))
            p.updated.append(name)
        key = given or old
        if key:
            p.public_keys[name] = _x25519.public_key(key)
        if name in h.interfaces and (old is None or key != old):
            p.loads.append(name)  # the file's key changes: the running interface takes it
    return p


# ---- diff ------------------------------------------------------------------------------------


def _meta_changes(mode, uid, gid, want_mode):
    changes = []
    if mode != want_mode:
        changes.append("mode %04o -> %04o" % (mode, want_mode))
    if uid != UID:
        changes.append("owner %d -> %d" % (uid, UID))
    if gid != GID:
        changes.append("group %d -> %d" % (gid, GID))
    return changes


def make_diff(w, h, p):
    """A list of Ansible diffs, one line each: what happens to the directory, to each key file (by
    name) and which interfaces take their new key. Never a key, private or public."""
    out = []
    if p.dir_op == "mkdir":
        out.append({"prepared": "created directory %s/ (mode %04o)\n" % (w.directory, DIR_MODE)})
    elif p.dir_op == "chattr":
        changes = _meta_changes(h.dir_mode, h.dir_uid, h.dir_gid, DIR_MODE)
        out.append({"prepared": "%s/: %s\n" % (w.directory, ", ".join(changes))})
    for op, name in p.ops:
        path = w.path(name)
        entry = h.entries.get(name)
        if op == "generate":
            out.append({"prepared": "created %s (a new key, made on the host)\n" % path})
        elif op == "write" and name in p.created:
            out.append({"prepared": "created %s (the given key)\n" % path})
        elif op == "write" and entry.key != w.given[name]:
            out.append({"prepared": "updated %s (the given key replaces the one it held)\n" % path})
        elif op == "write":
            out.append({"prepared": "updated %s (the same key, rewritten as the key and a newline)\n" % path})
        else:
            changes = _meta_changes(entry.mode, entry.uid, entry.gid, KEY_MODE)
            out.append({"prepared": "updated %s: %s\n" % (path, ", ".join(changes))})
    for name in p.loads:
        out.append({"prepared": "loaded the new key of %s into the running interface %s\n" % (w.path(name), name)})
    return out


# ---- apply: the one place that writes ---------------------------------------------------------


class LoadError(Exception):
    """`wg set` failed for an interface; the message names it and never holds a key."""


def _set_attributes(fd, mode):
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (UID, GID):
        os.fchown(fd, UID, GID)
    os.fchmod(fd, mode)


def _chattr(path, mode, directory):
    fd = _open_nofollow(path, directory)
    try:
        _set_attributes(fd, mode)
    finally:
        os.close(fd)


def _write(path, data):
    """DATA to PATH atomically: a temporary file in the same directory, mode 0600 from its creation
    (mkstemp), owned by root, flushed to disk, renamed over PATH (which never follows a symlink)."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            _set_attributes(fh.fileno(), KEY_MODE)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _fsync_dir(path):
    fd = _open_nofollow(path, True)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply(w, p, generated, load):
    """Run P: the directory, then each key file (GENERATED: name -> the key made for it), then
    LOAD(name, path) for each interface that takes its new key. Returns (loaded, failures): the
    interfaces that took their key, and the LoadError message of each one that did not. An OSError
    of the file system stops it at once."""
    if p.dir_op == "mkdir":
        os.mkdir(w.directory, DIR_MODE)
        _chattr(w.directory, DIR_MODE, True)
        _fsync_dir(os.path.dirname(w.directory))
    elif p.dir_op == "chattr":
        _chattr(w.directory, DIR_MODE, True)
    wrote = False
    for op, name in p.ops:
        if op == "chattr":
            _chattr(w.path(name), KEY_MODE, False)
        else:
            _write(w.path(name), content_of(generated[name] if op == "generate" else w.given[name]))
            wrote = True
    if wrote:
        _fsync_dir(w.directory)
    loaded, failures = [], []
    for name in p.loads:
        try:
            load(name, w.path(name))
        except LoadError as exc:
            failures.append(str(exc))
        else:
            loaded.append(name)
    return loaded, failures


# ---- the module ------------------------------------------------------------------------------


class WireguardKeys:
    """have / want / plan for the key files; apply() is the only place that writes.

    AnsibleModule masks the given keys (private_key is no_log) everywhere in the result; the keys
    read from the files and made here are added to its no_log values too, so that not even a
    message of `wg` could show one."""

    def __init__(self, module):
        self.module = module

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    def secret(self, *keys):
        self.module.no_log_values.update(key for key in keys if key)

    def load(self, wg):
        def _load(name, path):
            rc, out, err = self.module.run_command(
                [wg, "set", name, "private-key", path], environ_update={"LC_ALL": "C"}
            )
            if rc != 0:
                detail = (err or out).strip() or "exit status %d" % rc
                raise LoadError("%s: wg set %s private-key %s failed: %s" % (name, name, path, detail))

        return _load

    def run(self):
        params = self.module.params
        try:
            w = want(params)
        except KeysError as exc:
            self.fail("invalid input, nothing was changed: %s" % exc)
        self.secret(*w.given.values())
        try:
            h = have(w)
        except KeysError as exc:
            self.fail("nothing was changed: %s" % exc)
        self.secret(*h.secrets())
        p = plan(w, h)
        wg = None
        if p.loads:
            wg = self.module.get_bin_path("wg", opt_dirs=["/usr/bin", "/usr/sbin", "/sbin"])
            if not wg:
                self.fail(
                    "nothing was changed: the interfaces %s exist and take a new key, which needs `wg` "
                    "(wireguard-tools), not found on the host" % ", ".join(p.loads)
                )
        result = {
            "changed": p.changed,
            "public_keys": dict(p.public_keys),
            "created": list(p.created),
            "updated": list(p.updated),
            "loaded": list(p.loads),
        }
        if self.module._diff:
            result["diff"] = make_diff(w, h, p)
        if p.changed and not self.module.check_mode:
            generated = {name: _x25519.new_private_key() for name in p.generate}
            self.secret(*generated.values())
            try:
                loaded, failures = apply(w, p, generated, self.load(wg))
            except OSError as exc:
                self.fail(
                    "writing the keys failed part way, run the task again: %s: %s"
                    % (exc.filename or w.directory, exc.strerror or exc),
                    **{k: v for k, v in result.items() if k not in ("diff", "loaded")},
                )
            for name, key in generated.items():
                result["public_keys"][name] = _x25519.public_key(key)
            result["public_keys"] = {name: result["public_keys"][name] for name in w.names}
            result["loaded"] = loaded
            if failures:
                self.fail(
                    "the key files are written, but some running interfaces did not take their new key "
                    "(run `wg set NAME private-key FILE` or restart them; the next run does not retry): %s"
                    % "; ".join(failures),
                    **result,
                )
        self.module.exit_json(**result)
