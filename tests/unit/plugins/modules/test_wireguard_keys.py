"""splitroute.vpn.wireguard_keys run as Ansible runs it, on real key files in a temporary directory.

Loading a new key into a running interface is tested with a wireguard-go interface in a throwaway
network namespace that also has a mount namespace of its own with a private /run/wireguard
(wireguard-go's control sockets are files there, which network namespaces do not separate), so the
test sees only its own interface. ansible-playbook -vvv runs the module once more to show that no
private key reaches Ansible's output.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".cache" / "collections"
MODULE = "ansible_collections.splitroute.vpn.plugins.modules.wireguard_keys"


def wg(*args, data=None):
    return subprocess.run(["wg", *args], input=data, capture_output=True, text=True, check=True).stdout.strip()


def genkey():
    return wg("genkey")


def pubkey(private):
    return wg("pubkey", data=private + "\n")


@pytest.fixture
def keydir(tmp_path):
    return tmp_path / "wireguard"


def args(keydir, *keys, **kw):
    return dict({"directory": str(keydir), "keys": [dict(k) for k in keys]}, **kw)


def snapshot(path):
    """PATH and every file in it: kind, mode, owner, inode, mtime and content (None when missing)."""
    if not os.path.lexists(path):
        return None
    out = {}
    for full in [path, *sorted(Path(path).iterdir())] if os.path.isdir(path) else [path]:
        st = os.lstat(full)
        body = Path(full).read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[str(full)] = (
            stat.S_IFMT(st.st_mode),
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_ino,
            st.st_mtime_ns,
            body,
        )
    return out


def attrs(path):
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def file_key(keydir, name):
    text = (keydir / ("%s.key" % name)).read_text()
    assert text.endswith("\n") and len(text) == 45
    return text[:-1]


def no_key_in(result, *keys):
    shown = json.dumps(result)
    for key in keys:
        assert key not in shown


# ---- files ---------------------------------------------------------------------------------------


def test_generate_four_times(keydir, four, module):
    real = four("wireguard_keys", args(keydir, {"name": "wg0"}, {"name": "wg1"}))
    assert real["created"] == ["wg0", "wg1"] and real["updated"] == [] and real["loaded"] == []
    assert attrs(keydir) == (0o700, 0, 0) and stat.S_ISDIR(os.lstat(keydir).st_mode)
    keys = {name: file_key(keydir, name) for name in ("wg0", "wg1")}
    assert keys["wg0"] != keys["wg1"]
    for name, key in keys.items():
        assert attrs(keydir / ("%s.key" % name)) == (0o600, 0, 0)
        assert real["public_keys"][name] == pubkey(key)  # wg reads the file as its own
    assert list(real["public_keys"]) == ["wg0", "wg1"]
    no_key_in(real, *keys.values())
    assert real["diff"] == [
        {"prepared": "created directory %s/ (mode 0700)\n" % keydir},
        {"prepared": "created %s/wg0.key (a new key, made on the host)\n" % keydir},
        {"prepared": "created %s/wg1.key (a new key, made on the host)\n" % keydir},
    ]
    before = snapshot(keydir)
    again = module("wireguard_keys", args(keydir, {"name": "wg0"}, {"name": "wg1"}))
    assert again["changed"] is False and again["public_keys"] == real["public_keys"] and again["diff"] == []
    assert snapshot(keydir) == before


def test_given_key_replaces_a_generated_one_four_times(keydir, module, four):
    module("wireguard_keys", args(keydir, {"name": "wg0"}, {"name": "wg1"}))
    old = file_key(keydir, "wg0")
    kept = snapshot(keydir / "wg1.key")
    given = genkey()
    real = four("wireguard_keys", args(keydir, {"name": "wg0", "private_key": given}, {"name": "wg1"}))
    assert real["updated"] == ["wg0"] and real["created"] == []
    assert file_key(keydir, "wg0") == given and attrs(keydir / "wg0.key") == (0o600, 0, 0)
    assert real["public_keys"]["wg0"] == pubkey(given)
    assert snapshot(keydir / "wg1.key") == kept
    assert real["diff"] == [{"prepared": "updated %s/wg0.key (the given key replaces the one it held)\n" % keydir}]
    no_key_in(real, given, old)
    # a given key for a missing file, and the same key given again
    result = module(
        "wireguard_keys", args(keydir, {"name": "wg0", "private_key": given}, {"name": "wg2", "private_key": old})
    )
    assert (result["created"], result["updated"], result["changed"]) == (["wg2"], [], True)
    assert file_key(keydir, "wg2") == old and result["public_keys"]["wg2"] == pubkey(old)


def test_empty_string_means_generate(keydir, module):
    result = module("wireguard_keys", args(keydir, {"name": "wg0", "private_key": ""}))
    assert result["created"] == ["wg0"] and result["public_keys"]["wg0"] == pubkey(file_key(keydir, "wg0"))


def test_bad_given_key_fails_before_anything_is_written(keydir, module):
    good = genkey()
    bad = good[:-2] + "B="  # the padding bits set: base64 decodes it, wg refuses it
    fail = module(
        "wireguard_keys",
        args(keydir, {"name": "wg0", "private_key": good}, {"name": "wg1", "private_key": bad}),
        expect_fail=True,
    )
    assert fail["msg"].startswith("invalid input, nothing was changed: keys[1].private_key (wg1): not a WireGuard")
    assert not keydir.exists()  # neither the directory nor the good key
    no_key_in(fail, good, bad)
    # with the directory there: the good key is not written either
    keydir.mkdir(mode=0o700)
    fail = module(
        "wireguard_keys",
        args(keydir, {"name": "wg0", "private_key": good}, {"name": "wg1", "private_key": "x"}),
        expect_fail=True,
    )
    assert "keys[1].private_key (wg1)" in fail["msg"] and os.listdir(keydir) == []


def test_a_file_that_holds_no_key_fails_and_is_kept(keydir, module):
    keydir.mkdir(mode=0o700)
    secret = "PrivateKey = %s\n" % genkey()  # a wg-quick line, not a key file
    (keydir / "wg0.key").write_text(secret)
    os.chmod(keydir / "wg0.key", 0o644)
    before = snapshot(keydir)
    for given in (None, genkey()):
        keys = [{"name": "wg0", "private_key": given}, {"name": "wg1"}]
        fail = module("wireguard_keys", args(keydir, *keys), expect_fail=True)
        assert fail["msg"] == (
            "nothing was changed: wg0: %s/wg0.key holds no WireGuard private key (58 bytes that are not one key of "
            "44 base64 characters); a key someone may depend on is never replaced: put the right key in it or "
            "remove it" % keydir
        )
        no_key_in(fail, secret[13:57], *filter(None, [given]))
        assert snapshot(keydir) == before  # wg1 is not made, nor the mode fixed


def test_an_empty_file_gets_a_key(keydir, module, four):
    keydir.mkdir(mode=0o700)
    (keydir / "wg0.key").write_text("")  # what `wg genkey > FILE` leaves when wg is missing
    real = four("wireguard_keys", args(keydir, {"name": "wg0"}))
    assert real["created"] == ["wg0"] and real["public_keys"]["wg0"] == pubkey(file_key(keydir, "wg0"))


def test_an_existing_key_without_newline_is_kept(keydir, module):
    keydir.mkdir(mode=0o700)
    key = genkey()
    (keydir / "wg0.key").write_text(key)
    os.chmod(keydir / "wg0.key", 0o600)
    result = module("wireguard_keys", args(keydir, {"name": "wg0"}))
    assert result["changed"] is False and result["public_keys"] == {"wg0": pubkey(key)}
    # the same key given: written as key and newline
    result = module("wireguard_keys", args(keydir, {"name": "wg0", "private_key": key}))
    assert result["updated"] == ["wg0"] and (keydir / "wg0.key").read_text() == key + "\n"
    assert result["loaded"] == []


def test_mode_and_owner_are_fixed_in_place(keydir, module, four):
    module("wireguard_keys", args(keydir, {"name": "wg0"}, {"name": "wg1"}))
    os.chmod(keydir, 0o755)
    os.chown(keydir, 65534, 0)
    os.chmod(keydir / "wg0.key", 0o644)
    os.chown(keydir / "wg0.key", 65534, 65534)
    before = snapshot(keydir)
    real = four("wireguard_keys", args(keydir, {"name": "wg0"}, {"name": "wg1"}))
    assert real["updated"] == ["wg0"] and real["created"] == []
    assert real["diff"] == [
        {"prepared": "%s/: mode 0755 -> 0700, owner 65534 -> 0\n" % keydir},
        {"prepared": "updated %s/wg0.key: mode 0644 -> 0600, owner 65534 -> 0, group 65534 -> 0\n" % keydir},
    ]
    after = snapshot(keydir)
    assert attrs(keydir) == (0o700, 0, 0) and attrs(keydir / "wg0.key") == (0o600, 0, 0)
    wg0 = str(keydir / "wg0.key")
    assert (after[wg0][4], after[wg0][6]) == (before[wg0][4], before[wg0][6])  # the same file, the same key
    # only the directory wrong: a change that names no interface
    os.chmod(keydir, 0o750)
    result = module("wireguard_keys", args(keydir, {"name": "wg0"}))
    assert (result["changed"], result["created"], result["updated"]) == (True, [], [])
    assert attrs(keydir) == (0o700, 0, 0)


def test_check_mode_writes_nothing_and_reports_what_it_knows(keydir, module):
    given = genkey()
    keys = ({"name": "wg0", "private_key": given}, {"name": "wg1"})
    result = module("wireguard_keys", args(keydir, *keys), check=True)
    assert not keydir.exists()
    assert result["changed"] is True and result["created"] == ["wg0", "wg1"]
    assert result["public_keys"] == {"wg0": pubkey(given)}  # not the key that would be made
    # an existing key is known; another given key would replace it
    module("wireguard_keys", args(keydir, {"name": "wg1"}))
    existing = file_key(keydir, "wg1")
    before = snapshot(keydir)
    other = genkey()
    result = module(
        "wireguard_keys",
        args(keydir, {"name": "wg0", "private_key": given}, {"name": "wg1", "private_key": other}, {"name": "wg2"}),
        check=True,
    )
    assert snapshot(keydir) == before
    assert (result["created"], result["updated"]) == (["wg0", "wg2"], ["wg1"])
    assert result["public_keys"] == {"wg0": pubkey(given), "wg1": pubkey(other)}
    no_key_in(result, given, other, existing)


def test_things_in_the_way_are_refused(keydir, module, tmp_path):
    keydir.mkdir(mode=0o700)
    target = tmp_path / "target"
    (keydir / "wg0.key").symlink_to(target)
    (keydir / "wg1.key").mkdir()
    fail = module("wireguard_keys", args(keydir, {"name": "wg0"}, {"name": "wg1"}, {"name": "wg2"}), expect_fail=True)
    assert "wg0: %s/wg0.key is a symlink, not a key file" % keydir in fail["msg"]
    assert "wg1: %s/wg1.key is a directory, not a key file" % keydir in fail["msg"]
    assert not target.exists() and sorted(os.listdir(keydir)) == ["wg0.key", "wg1.key"]
    link = tmp_path / "link"
    link.symlink_to(keydir)
    fail = module("wireguard_keys", args(link, {"name": "wg2"}), expect_fail=True)
    assert fail["msg"] == (
        "nothing was changed: directory: %s is a symlink, not a directory (the module never writes through a "
        "symlink: remove it)" % link
    )


def test_wrong_types_and_duplicates_fail_without_showing_a_key(keydir, module):
    given = genkey()
    fail = module("wireguard_keys", args(keydir, {"name": ["wg0"], "private_key": given}), expect_fail=True)
    assert fail["msg"] == "invalid arguments, nothing was changed: keys[0].name: must be a string, not list"
    no_key_in(fail, given)
    assert fail["invocation"]["module_args"]["keys"][0]["name"] == ["wg0"]  # only the key is masked
    fail = module(
        "wireguard_keys", args(keydir, {"name": "wg0", "private_key": given}, {"name": "wg0"}), expect_fail=True
    )
    assert "keys[1].name: 'wg0' is given twice (also keys[0])" in fail["msg"]
    no_key_in(fail, given)
    assert not keydir.exists()


# ---- running interfaces --------------------------------------------------------------------------


class Box:
    """A network namespace with a mount namespace of its own holding a private /run/wireguard."""

    def __init__(self, netns):
        self.procs = []
        os.makedirs("/run/wireguard", exist_ok=True)  # the mount point; wireguard-go makes it too
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs -o mode=0700 tmpfs /run/wireguard && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.holder.stdout.readline().strip() == "ready", "no private /run/wireguard"

    def argv(self, *cmd):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *cmd]

    def run(self, *cmd, check=True, **kw):
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, check=check, **kw)

    def wireguard_go(self, name):
        self.procs.append(
            subprocess.Popen(
                self.argv("wireguard-go", "-f", name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        for _attempt in range(100):
            if self.run("wg", "show", name, check=False).returncode == 0:
                return
            time.sleep(0.1)
        pytest.fail("wireguard-go made no %s" % name)

    def module(self, args, check=False, expect_fail=False):
        """The module run inside the box, as Ansible runs it."""
        payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=True)}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(payload, fh)
        try:
            proc = self.run(
                sys.executable, "-m", MODULE, fh.name, check=False, env=dict(os.environ, PYTHONPATH=str(COLLECTIONS))
            )
        finally:
            os.unlink(fh.name)
        result = json.loads(proc.stdout)
        assert bool(result.get("failed")) == expect_fail, result
        return result

    def close(self):
        for proc in self.procs + [self.holder]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@pytest.fixture
def box(netns):
    made = Box(netns)
    yield made
    made.close()
    assert all(proc.poll() is not None for proc in made.procs + [made.holder])


def test_a_running_interface_takes_its_new_key(box, keydir):
    box.wireguard_go("wg0")
    assert box.run("wg", "show", "wg0", "private-key").stdout.strip() == "(none)"
    keys = [{"name": "wg0"}, {"name": "wg9"}]  # wg9 does not exist: its file is made, nothing loaded
    made = box.module(args(keydir, *keys))
    assert (made["created"], made["loaded"]) == (["wg0", "wg9"], ["wg0"])
    assert box.run("wg", "show", "wg0", "private-key").stdout.strip() == file_key(keydir, "wg0")
    assert box.run("wg", "show", "wg0", "public-key").stdout.strip() == made["public_keys"]["wg0"]
    assert {"prepared": "loaded the new key of %s/wg0.key into the running interface wg0\n" % keydir} in made["diff"]
    no_key_in(made, file_key(keydir, "wg0"), file_key(keydir, "wg9"))
    # nothing new: nothing loaded, even when the interface holds another key
    other = genkey()
    box.run("wg", "set", "wg0", "private-key", "/dev/stdin", input=other + "\n")
    again = box.module(args(keydir, *keys))
    assert (again["changed"], again["loaded"]) == (False, [])
    assert box.run("wg", "show", "wg0", "private-key").stdout.strip() == other
    # a given key: check mode says it would load, and does not
    given = genkey()
    keys = [{"name": "wg0", "private_key": given}, {"name": "wg9"}]
    check = box.module(args(keydir, *keys), check=True)
    assert (check["updated"], check["loaded"]) == (["wg0"], ["wg0"])
    assert box.run("wg", "show", "wg0", "private-key").stdout.strip() == other
    real = box.module(args(keydir, *keys))
    assert (real["updated"], real["loaded"]) == (["wg0"], ["wg0"])
    assert box.run("wg", "show", "wg0", "private-key").stdout.strip() == given == file_key(keydir, "wg0")
    no_key_in(real, given, other)
    # a mode fix is no new key: not loaded
    os.chmod(keydir / "wg0.key", 0o640)
    fixed = box.module(args(keydir, *keys))
    assert (fixed["updated"], fixed["loaded"]) == (["wg0"], [])


def test_an_interface_that_refuses_the_key_fails_the_task_after_the_files(box, keydir):
    # lo exists in every namespace and is no WireGuard interface: wg set fails
    fail = box.module(args(keydir, {"name": "lo"}, {"name": "wg0"}), expect_fail=True)
    assert fail["msg"].startswith(
        "the key files are written, but some running interfaces did not take their new key (run `wg set NAME "
        "private-key FILE` or restart them; the next run does not retry): lo: wg set lo private-key %s/lo.key "
        "failed: " % keydir
    )
    assert (fail["created"], fail["loaded"]) == (["lo", "wg0"], [])
    assert fail["public_keys"] == {"lo": pubkey(file_key(keydir, "lo")), "wg0": pubkey(file_key(keydir, "wg0"))}
    no_key_in(fail, file_key(keydir, "lo"), file_key(keydir, "wg0"))


# ---- what Ansible shows --------------------------------------------------------------------------

PLAY = """
- name: Keys
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Make sure of the keys
      splitroute.vpn.wireguard_keys:
        directory: "{{ keydir }}"
        keys:
          - name: wg0
            private_key: "{{ given }}"
          - name: wg1
          - name: "{{ second_name }}"
            private_key: "{{ given_two }}"
      register: keys_result

    - name: Show the result
      ansible.builtin.debug:
        var: keys_result
"""


def playbook(tmp_path, extra, *options):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(
        os.environ,
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "local-tmp"),
        PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")),
    )
    cmd = ["ansible-playbook", "-vvv", "--diff", "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=/usr/bin/python3", "-e", "@%s" % (tmp_path / "vars.json"),
           *options, str(tmp_path / "play.yml")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    return proc.returncode, proc.stdout + proc.stderr


def test_ansible_shows_no_private_key(tmp_path, keydir):
    given, given_two = genkey(), genkey()
    extra = {"keydir": str(keydir), "given": given, "second_name": "wg2", "given_two": given_two}
    rc, out = playbook(tmp_path, extra, "--check")
    assert rc == 0, out
    rc, out_real = playbook(tmp_path, extra)
    assert rc == 0, out_real
    made = file_key(keydir, "wg1")
    rc, out_again = playbook(tmp_path, extra)
    assert rc == 0 and "changed=0" in out_again, out_again
    # the runs did show the results: the public keys, the files' names
    for output in (out_real, out_again):
        assert pubkey(given) in output and pubkey(made) in output
    assert "created %s/wg1.key (a new key, made on the host)" % keydir in out_real
    # a wrong type and a bad key fail: the keys are not shown either
    rc, out_type = playbook(tmp_path, dict(extra, second_name=["wg2"]))
    assert rc != 0 and "keys[2].name: must be a string, not list" in out_type, out_type
    near_miss = given[:-2] + "B="
    rc, out_bad = playbook(tmp_path, dict(extra, given_two=near_miss))
    assert rc != 0 and "keys[2].private_key (wg2): not a WireGuard private key" in out_bad, out_bad
    for output in (out, out_real, out_again, out_type, out_bad):
        for secret in (given, given_two, made, near_miss):
            assert secret not in output
