"""The pure parts of _x25519 and _wg_keys: RFC 7748's vectors, agreement with `wg`, the input checks,
what a key file may hold, and the plan on real files."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _wg_keys as wk
from ansible_collections.splitroute.vpn.plugins.module_utils import _x25519 as x

# ---- RFC 7748 ------------------------------------------------------------------------------------

# Section 5.2: (input scalar, input u-coordinate, output u-coordinate), little-endian hex
VECTORS_5_2 = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (  # the u-coordinate's top bit is set: X25519 masks it
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
]
# Section 5.2, iterated: k = u = 9, then k, u = X25519(k, u), k
ITERATED = {
    1: "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
    1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
}
# Section 6.1
ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


@pytest.mark.parametrize(("scalar", "u", "out"), VECTORS_5_2)
def test_rfc7748_section_5_2(scalar, u, out):
    assert x.x25519(bytes.fromhex(scalar), bytes.fromhex(u)).hex() == out


def test_rfc7748_section_5_2_iterated():
    k = u = x.BASE_POINT
    for round_ in range(1, max(ITERATED) + 1):
        k, u = x.x25519(k, u), k
        if round_ in ITERATED:
            assert k.hex() == ITERATED[round_], round_


def test_rfc7748_section_6_1():
    alice, bob = bytes.fromhex(ALICE_PRIVATE), bytes.fromhex(BOB_PRIVATE)
    assert x.x25519(alice, x.BASE_POINT).hex() == ALICE_PUBLIC
    assert x.x25519(bob, x.BASE_POINT).hex() == BOB_PUBLIC
    assert x.x25519(alice, bytes.fromhex(BOB_PUBLIC)).hex() == SHARED
    assert x.x25519(bob, bytes.fromhex(ALICE_PUBLIC)).hex() == SHARED
    # the same through WireGuard's base64
    assert x.public_key(base64.b64encode(alice).decode()) == base64.b64encode(bytes.fromhex(ALICE_PUBLIC)).decode()


def test_clamping():
    assert x.clamp(b"\xff" * 32) == b"\xf8" + b"\xff" * 30 + b"\x7f"
    assert x.clamp(b"\x00" * 32) == b"\x00" * 31 + b"\x40"
    with pytest.raises(ValueError):
        x.clamp(b"\x00" * 31)
    # X25519 clamps its scalar: an unclamped key has the public key of its clamped form
    raw = bytes(range(200, 232))
    assert x.x25519(raw, x.BASE_POINT) == x.x25519(x.clamp(raw), x.BASE_POINT)


def test_new_private_keys_are_clamped_and_distinct():
    keys = {x.new_private_key() for _number in range(20)}
    assert len(keys) == 20
    for key in keys:
        raw = x.decode_key(key)
        assert len(key) == 44 and raw is not None and x.clamp(raw) == raw


# ---- agreement with wireguard-tools ---------------------------------------------------------------


def wg(*args, data=None):
    return subprocess.run(["wg", *args], input=data, capture_output=True, text=True, check=True).stdout.strip()


def test_public_keys_of_wg_genkey_keys_are_wg_pubkey():
    for _round in range(8):
        private = wg("genkey")
        assert x.public_key(private) == wg("pubkey", data=private + "\n")


def test_wg_takes_our_keys_and_agrees_on_their_public_keys():
    for _round in range(8):
        private = x.new_private_key()
        assert x.public_key(private) == wg("pubkey", data=private + "\n")
    # an unclamped key (a given one may be): both clamp it
    for _round in range(4):
        private = base64.b64encode(os.urandom(32)).decode()
        assert x.public_key(private) == wg("pubkey", data=private)


def test_decode_key_takes_what_wg_takes_only():
    good = wg("genkey")
    assert x.decode_key(good) == base64.b64decode(good)
    # the last character's two padding bits set: base64 still decodes it, wg refuses it
    bad_bits = good[:42] + "B="
    proc = subprocess.run(["wg", "pubkey"], input=bad_bits, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and x.decode_key(bad_bits) is None
    for bad in (
        good + "\n",
        " " + good,
        good[:-1],
        good[:-1] + "A",
        good + "=",
        base64.b64encode(b"x" * 31).decode(),
        "!" * 43 + "=",
        "",
        None,
        32,
        b"x" * 44,
    ):
        assert x.decode_key(bad) is None, bad
    with pytest.raises(ValueError) as info:
        x.public_key(good[:-2])
    assert good[:-2] not in str(info.value)


# ---- want -------------------------------------------------------------------------------------------


def params(keys, directory="/etc/wireguard", **kw):
    return dict({"directory": directory, "keys": keys, "state": "present"}, **kw)


def test_want_takes_names_and_given_keys():
    key = x.new_private_key()
    w = wk.want(
        params(
            [{"name": "wg0"}, {"name": "wg1", "private_key": key}, {"name": "a.b:c+d-e_f", "private_key": ""}],
            directory="/etc/wireguard/",
        )
    )
    assert w.directory == "/etc/wireguard"
    assert w.names == ["wg0", "wg1", "a.b:c+d-e_f"]
    assert w.given == {"wg1": key}
    assert w.path("wg1") == "/etc/wireguard/wg1.key"


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 16, "wg 0", "wg/0", "wg0\n", "wgé", None, 5, True, ["wg0"]])
def test_bad_names_are_refused(name):
    with pytest.raises(wk.KeysError, match=r"^keys\[0\]\.name: interface name .* is invalid: 1-15 characters"):
        wk.want(params([{"name": name}]))


def test_duplicates_are_refused():
    with pytest.raises(wk.KeysError, match=r"^keys\[2\]\.name: 'wg0' is given twice \(also keys\[0\]\)"):
        wk.want(params([{"name": "wg0"}, {"name": "wg1"}, {"name": "wg0"}]))


@pytest.mark.parametrize("directory", ["", "etc/wireguard", "/", "//", "/etc/../x", "/etc/./x", "/a//b", "/a\nb", 5])
def test_bad_directories_are_refused(directory):
    with pytest.raises(wk.KeysError, match=r"^directory: "):
        wk.want(params([], directory=directory))


def test_bad_given_keys_are_named_never_shown():
    good = x.new_private_key()
    bads = [good + "\n", good[:-1], good[:42] + "B=", "not a key at all, but long enough to be noticed"]
    keys = [{"name": "wg%d" % i, "private_key": bad} for i, bad in enumerate(bads)] + [
        {"name": "ok", "private_key": good}
    ]
    with pytest.raises(wk.KeysError) as info:
        wk.want(params(keys))
    message = str(info.value)
    for index in range(len(bads)):
        assert "keys[%d].private_key (wg%d): not a WireGuard private key" % (index, index) in message
    for bad in bads:
        assert bad.strip() not in message and good[:20] not in message
    assert "ok" not in message.replace("not shown", "")


def test_every_problem_is_reported_at_once():
    with pytest.raises(wk.KeysError) as info:
        wk.want(
            params(
                [{"name": "bad name", "private_key": "x" * 44}, {"name": "wg1", "private_key": 7}],
                directory="relative",
                state="absent",
            )
        )
    message = str(info.value)
    assert message.startswith("directory: must be an absolute path")
    for part in (
        "state: must be present",
        "keys[0].name: interface name 'bad name' is invalid",
        "keys[0].private_key: not a WireGuard private key",
        "keys[1].private_key (wg1): must be a string",
    ):
        assert part in message, part


# ---- what a key file may hold ----------------------------------------------------------------------


def test_key_file_contents():
    key = x.new_private_key()
    for good in (key + "\n", key, key + "\n\n", key + " \t\r\n"):
        assert wk.parse_key_file(good.encode()) == (key, None)
    for empty in (b"", b"\n", b"  \n\t"):
        assert wk.parse_key_file(empty) == (None, None)
    for bad in (
        " " + key + "\n",
        key + "x\n",
        key + "\n" + key + "\n",
        key[:-1] + "\n",
        b"\xff" * 45,
        "PrivateKey = " + key,
    ):
        data = bad if isinstance(bad, bytes) else bad.encode()
        parsed, problem = wk.parse_key_file(data)
        assert parsed is None and problem.startswith("holds no WireGuard private key (%d bytes" % len(data))
        assert key not in problem


# ---- have and plan on real files ------------------------------------------------------------------


def test_plan_on_real_files(tmp_path):
    directory = tmp_path / "wg"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    kept, replaced, same, given_same = (x.new_private_key() for _number in range(4))
    (directory / "kept.key").write_text(kept + "\n")
    os.chmod(directory / "kept.key", 0o644)
    (directory / "replaced.key").write_text(replaced + "\n")
    (directory / "same.key").write_text(same)  # no newline: kept as it is when no key is given
    (directory / "rewrite.key").write_text(given_same)  # the given key without its newline: rewritten
    (directory / "empty.key").write_text("")
    for name in ("replaced", "same", "rewrite", "empty"):
        os.chmod(directory / ("%s.key" % name), 0o600)
    new = x.new_private_key()
    w = wk.want(
        params(
            [
                {"name": "kept"},
                {"name": "replaced", "private_key": new},
                {"name": "same"},
                {"name": "rewrite", "private_key": given_same},
                {"name": "empty"},
                {"name": "missing"},
                {"name": "lo"},
            ],
            directory=str(directory),
        )
    )
    h = wk.have(w)
    assert h.interfaces == {"lo"}  # the loopback exists in every network namespace
    assert sorted(h.entries) == ["empty", "kept", "replaced", "rewrite", "same"]
    assert sorted(h.secrets()) == sorted([kept, replaced, same, given_same])
    p = wk.plan(w, h)
    assert p.dir_op == "chattr"
    assert p.ops == [
        ("chattr", "kept"),
        ("write", "replaced"),
        ("write", "rewrite"),
        ("generate", "empty"),
        ("generate", "missing"),
        ("generate", "lo"),
    ]
    assert p.generate == ["empty", "missing", "lo"]
    assert p.created == ["empty", "missing", "lo"]
    assert p.updated == ["kept", "replaced", "rewrite"]
    assert p.loads == ["lo"]  # only an interface that exists takes its key
    assert p.public_keys == {
        name: x.public_key(key)
        for name, key in (("kept", kept), ("replaced", new), ("same", same), ("rewrite", given_same))
    }
    diff = "".join(d["prepared"] for d in wk.make_diff(w, h, p))
    assert "%s/: mode 0755 -> 0700\n" % directory in diff
    assert "updated %s/kept.key: mode 0644 -> 0600\n" % directory in diff
    assert "updated %s/replaced.key (the given key replaces the one it held)\n" % directory in diff
    assert "created %s/empty.key (a new key, made on the host)\n" % directory in diff
    assert "into the running interface lo\n" in diff
    for key in (kept, replaced, same, given_same, new):
        assert key not in diff and x.public_key(key) not in diff


def test_in_the_way_and_corrupt_files_are_all_named(tmp_path):
    directory = tmp_path / "wg"
    directory.mkdir()
    (directory / "link.key").symlink_to(tmp_path / "elsewhere")
    (directory / "dir.key").mkdir()
    os.mkfifo(directory / "fifo.key")
    secret = "PrivateKey = " + x.new_private_key()
    (directory / "bad.key").write_text(secret + "\n")
    w = wk.want(params([{"name": n} for n in ("link", "dir", "fifo", "bad", "fine")], directory=str(directory)))
    with pytest.raises(wk.KeysError) as info:
        wk.have(w)
    message = str(info.value)
    assert "link: %s/link.key is a symlink, not a key file" % directory in message
    assert "dir: %s/dir.key is a directory, not a key file" % directory in message
    assert "fifo: %s/fifo.key is a fifo, not a key file" % directory in message
    assert "bad: %s/bad.key holds no WireGuard private key (58 bytes" % directory in message
    assert "fine" not in message and secret[13:] not in message
    assert not (tmp_path / "elsewhere").exists()


def test_directory_in_the_way(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("")
    for name, what in (("link", "a symlink"), ("file", "a file")):
        w = wk.want(params([{"name": "wg0"}], directory=str(tmp_path / name)))
        with pytest.raises(wk.KeysError, match=r"^directory: %s is %s, not a directory" % (tmp_path / name, what)):
            wk.have(w)
    w = wk.want(params([{"name": "wg0"}], directory=str(tmp_path / "no" / "wg")))
    with pytest.raises(wk.KeysError, match=r"^directory: the parent directory %s does not exist" % (tmp_path / "no")):
        wk.have(w)


def test_apply_writes_the_directory_and_the_files(tmp_path):
    directory = tmp_path / "wg"
    w = wk.want(
        params([{"name": "wg0"}, {"name": "wg1", "private_key": x.new_private_key()}], directory=str(directory))
    )
    p = wk.plan(w, wk.have(w))
    assert p.dir_op == "mkdir" and p.loads == []
    generated = {name: x.new_private_key() for name in p.generate}
    assert wk.apply(w, p, generated, None) == ([], [])
    assert oct(os.stat(directory).st_mode & 0o7777) == "0o700"
    for name, key in (("wg0", generated["wg0"]), ("wg1", w.given["wg1"])):
        st = os.stat(directory / ("%s.key" % name))
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 0, 0)
        assert (directory / ("%s.key" % name)).read_text() == key + "\n"
    assert sorted(os.listdir(directory)) == ["wg0.key", "wg1.key"]  # no temporary file left
    again = wk.plan(w, wk.have(w))
    assert not again.changed and again.public_keys == {
        "wg0": x.public_key(generated["wg0"]),
        "wg1": x.public_key(w.given["wg1"]),
    }
