"""splitroute.vpn.dnsmasq_nftset run as Ansible runs it, and the files it writes run by a real dnsmasq.

The dnsmasq cases start three dnsmasq processes (as user nobody, the default) inside the
`netns` fixture's namespace: an upstream on 127.0.0.2 that answers A and AAAA for the test
names, and the resolvers under test. They check that listed names really land in the nftables
sets and that unlisted ones do not.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SETS = [
    {"version": 4, "table": "splitroute", "name": "wg0_v4"},
    {"version": 6, "table": "splitroute", "name": "wg0_v6"},
]
HEADER = "# Managed by splitroute.vpn.dnsmasq_nftset"


def group(name="wg0", domains=("example.com",), **kw):
    return dict({"name": name, "domains": list(domains), "sets": SETS}, **kw)


def snapshot(path):
    """Content and metadata of PATH, or None when it does not exist."""
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    with open(path, "rb") as fh:
        return fh.read(), st.st_mode, st.st_mtime_ns, st.st_ino


@pytest.fixture
def conf(tmp_path):
    directory = tmp_path / "dnsmasq.d"
    directory.mkdir()
    return directory / "splitroute.conf"


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """TMPDIR for the module's process (run_module passes the environment on), to see what it leaves."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setenv("TMPDIR", str(directory))
    return directory


# ---- states, check mode, idempotence -------------------------------------------------------------


def test_present_four_times_then_absent_four_times(conf, four, private_tmp):
    args = {"path": str(conf), "groups": [group(domains=["b.example", "Bücher.example", "a.example."])]}
    real = four("dnsmasq_nftset", args)
    text = conf.read_text()
    assert text.startswith(HEADER)
    assert real["domains_added"] == ["a.example", "b.example", "xn--bcher-kva.example"]
    assert real["domains_removed"] == []
    assert real["domain_count"] == 3
    assert real["operations"] == ["write %s" % conf]
    assert real["diff"] == {"before": "", "after": text, "before_header": str(conf), "after_header": str(conf)}
    assert "nftset=/xn--bcher-kva.example/4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6\n" in text
    assert sorted(os.listdir(conf.parent)) == ["splitroute.conf"]

    gone = four("dnsmasq_nftset", {"path": str(conf), "state": "absent"})
    assert not conf.exists()
    assert gone["domains_removed"] == ["a.example", "b.example", "xn--bcher-kva.example"]
    assert gone["operations"] == ["remove %s" % conf]
    assert gone["diff"]["before"] == text
    assert gone["diff"]["after"] == ""
    assert list(private_tmp.iterdir()) == []


def test_check_mode_leaves_nothing_behind(conf, module, private_tmp):
    result = module("dnsmasq_nftset", {"path": str(conf), "groups": [group()]}, check=True)
    assert result["changed"] is True
    assert result["domains_added"] == ["example.com"]
    assert result["diff"]["after"].startswith(HEADER)
    assert not conf.exists()
    assert list(conf.parent.iterdir()) == []
    assert list(private_tmp.iterdir()) == []  # the dnsmasq --test file is gone too


def test_check_mode_does_not_touch_an_existing_file(conf, module):
    conf.write_text("server=/old.example/10.0.0.1\n")
    before = snapshot(conf)
    result = module("dnsmasq_nftset", {"path": str(conf), "groups": [group()]}, check=True)
    assert result["changed"] is True
    assert result["domains_added"] == ["example.com"]
    assert result["domains_removed"] == ["old.example"]
    assert snapshot(conf) == before


def test_change_reports_added_and_removed(conf, module, four):
    four("dnsmasq_nftset", {"path": str(conf), "groups": [group(domains=["a.example", "b.example"])]})
    args = {"path": str(conf), "groups": [group(domains=["b.example", "c.example"])]}
    result = four("dnsmasq_nftset", args)
    assert result["domains_added"] == ["c.example"]
    assert result["domains_removed"] == ["a.example"]
    assert "a.example" in result["diff"]["before"]
    assert "a.example" not in result["diff"]["after"]


def test_round_trip_restores_the_start(conf, module, four):
    original = "# hand written\nserver=/hand.example/10.0.0.1\n"
    conf.write_text(original)
    four("dnsmasq_nftset", {"path": str(conf), "groups": [group()]})
    four("dnsmasq_nftset", {"path": str(conf), "state": "absent"})
    assert not conf.exists()
    conf.write_text(original)
    assert module("dnsmasq_nftset", {"path": str(conf), "state": "absent"}, check=True)["changed"] is True


def test_mode_owner_group(conf, module, four):
    args = {"path": str(conf), "groups": [group()], "mode": "0640", "owner": "nobody", "group": "nogroup"}
    four("dnsmasq_nftset", args)
    st = conf.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    content = conf.read_bytes()
    # only the mode changes: reported, applied, content untouched
    result = four("dnsmasq_nftset", dict(args, mode="0600"))
    assert result["operations"] == ["set attributes %s" % conf]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert conf.read_bytes() == content


def test_new_file_gets_a_readable_default_mode(conf, module):
    module("dnsmasq_nftset", {"path": str(conf), "groups": [group()]})
    assert stat.S_IMODE(conf.stat().st_mode) == 0o666 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_existing_mode_is_kept(conf, module):
    conf.write_text("# old\n")
    conf.chmod(0o600)
    module("dnsmasq_nftset", {"path": str(conf), "groups": [group()]})
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600


def test_absent_when_missing_is_not_a_change(conf, module):
    result = module("dnsmasq_nftset", {"path": str(conf), "state": "absent"})
    assert result["changed"] is False
    assert result["operations"] == []


# ---- layouts -------------------------------------------------------------------------------------


def test_front_layout_four_times(conf, four):
    args = {
        "path": str(conf),
        "layout": "front",
        "groups": [
            group(domains=["b.example", "a.example"], back_server="127.0.0.53#5301"),
            group(name="ovpn0", domains=["c.example"], back_server="127.0.0.54#5302"),
        ],
    }
    result = four("dnsmasq_nftset", args)
    lines = conf.read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "server=/c.example/127.0.0.54#5302",
        "server=/a.example/127.0.0.53#5301",
        "server=/b.example/127.0.0.53#5301",
    ]
    assert result["domains_added"] == ["a.example", "b.example", "c.example"]


def test_back_layout_four_times(conf, four):
    args = {"path": str(conf), "layout": "back", "groups": [group(servers=["10.8.0.1", "fd00::1#5353"])]}
    result = four("dnsmasq_nftset", args)
    assert [line for line in conf.read_text().splitlines() if not line.startswith("#")] == [
        "nftset=/#/4#inet#splitroute#wg0_v4,6#inet#splitroute#wg0_v6",
        "server=10.8.0.1",
        "server=fd00::1#5353",
    ]
    assert result["domain_count"] == 0


def test_ten_thousand_domains(conf, four):
    domains = ["host%05d.zone%02d.example" % (i, i % 37) for i in range(10000)]
    args = {"path": str(conf), "groups": [group(domains=domains + [d.upper() for d in domains[:500]])]}
    result = four("dnsmasq_nftset", args)
    assert result["domain_count"] == 10000
    assert len(result["domains_added"]) == 10000
    assert len(conf.read_text().splitlines()) == 10002


# ---- bad input fails before anything changes ----------------------------------------------------

BAD_ARGS = {
    "newline in a domain": {"groups": [group(domains=["ok.example", "a.example\nserver=/x/10.0.0.1"])]},
    "slash in a domain": {"groups": [group(domains=["a.example/4#inet#t#s"])]},
    "hash in a domain": {"groups": [group(domains=["#"])]},
    "comma in a domain": {"groups": [group(domains=["a.example,6#inet#t#s"])]},
    "space in a domain": {"groups": [group(domains=["a example"])]},
    "NUL in a domain": {"groups": [group(domains=["a\x00.example"])]},
    "fullwidth solidus in a domain": {"groups": [group(domains=["a\uff0fb.example"])]},
    "wildcard": {"groups": [group(domains=["*.example.com"])]},
    "newline in a table": {"groups": [group(sets=[{"version": 4, "table": "t\nserver=/x/1.1.1.1", "name": "s"}])]},
    "newline at the end of a set name": {"groups": [group(sets=[{"version": 4, "table": "t", "name": "s\n"}])]},
    "family": {"groups": [group(sets=[{"version": 4, "family": "bridge", "table": "t", "name": "s"}])]},
    "version": {"groups": [group(sets=[{"version": 5, "table": "t", "name": "s"}])]},
    "newline in a server": {"groups": [group(servers=["10.0.0.1\nnftset=/#/4#inet#t#s"])]},
    "scope in a server": {"groups": [group(servers=["fe80::1%eth0"])]},
    "port": {"groups": [group(servers=["10.0.0.1#70000"])]},
    "newline in back_server": {"layout": "front", "groups": [group(back_server="127.0.0.1\n#")]},
    "newline in a group name": {"groups": [group(name="wg0\nnftset=/#/4#inet#t#s")]},
    "domain in two groups": {"groups": [group(), group(name="other", domains=["EXAMPLE.com."])]},
    "two groups for back": {"layout": "back", "groups": [group(), group(name="other", domains=[])]},
    "unknown group key": {"groups": [dict(group(), validate="true")]},
    "line too long": {"groups": [group(sets=[{"version": 4, "table": "t" * 200, "name": c * 250} for c in "abcd"])]},
}


@pytest.mark.parametrize("case", sorted(BAD_ARGS))
def test_bad_input_changes_nothing(conf, module, private_tmp, case):
    conf.write_text("# before\nnftset=/keep.example/4#inet#splitroute#wg0_v4\n")
    before = snapshot(conf)
    result = module("dnsmasq_nftset", dict(BAD_ARGS[case], path=str(conf)), expect_fail=True)
    assert result["msg"]
    assert snapshot(conf) == before
    assert sorted(os.listdir(conf.parent)) == ["splitroute.conf"]
    assert list(private_tmp.iterdir()) == []


def test_bad_input_message_names_group_and_domain(conf, module):
    result = module("dnsmasq_nftset", {"path": str(conf), "groups": [group(domains=["*.x.example"])]}, expect_fail=True)
    assert "group wg0: domain '*.x.example': wildcards are not supported" in result["msg"]
    assert "write 'x.example' instead" in result["msg"]
    assert result["msg"].startswith("invalid input, nothing was changed")


def test_dnsmasq_rejecting_the_file_changes_nothing(conf, module):
    conf.write_text("# before\n")
    before = snapshot(conf)
    result = module(
        "dnsmasq_nftset", {"path": str(conf), "groups": [group()], "dnsmasq_binary": "/bin/false"}, expect_fail=True
    )
    assert "dnsmasq --test rejected the generated configuration" in result["msg"]
    assert snapshot(conf) == before


def test_missing_dnsmasq_binary(conf, module):
    result = module(
        "dnsmasq_nftset",
        {"path": str(conf), "groups": [group()], "dnsmasq_binary": "no-such-dnsmasq"},
        expect_fail=True,
    )
    assert "no-such-dnsmasq not found" in result["msg"]
    assert not conf.exists()


def test_missing_directory(tmp_path, module):
    path = tmp_path / "missing" / "x.conf"
    result = module("dnsmasq_nftset", {"path": str(path), "groups": [group()]}, expect_fail=True)
    assert "does not exist" in result["msg"]
    assert not path.parent.exists()


def test_path_is_a_directory(conf, module):
    conf.mkdir()
    result = module("dnsmasq_nftset", {"path": str(conf), "state": "absent"}, expect_fail=True)
    assert "is a directory" in result["msg"]


def test_missing_netns(conf, module):
    args = {"path": str(conf), "groups": [group()], "netns": "srt-does-not-exist", "check_sets": True}
    result = module("dnsmasq_nftset", args, expect_fail=True)
    assert "does not exist" in result["msg"]
    assert not conf.exists()


# ---- check_sets inside a namespace ----------------------------------------------------------------


def make_sets(nsexec, v6_type="ipv6_addr"):
    nsexec(
        "nft",
        "add table inet splitroute; "
        "add set inet splitroute wg0_v4 { type ipv4_addr; flags timeout; }; "
        "add set inet splitroute wg0_v6 { type %s; flags timeout; }" % v6_type,
    )


def test_check_sets_passes(conf, netns, nsexec, four):
    make_sets(nsexec)
    four("dnsmasq_nftset", {"path": str(conf), "groups": [group()], "check_sets": True, "netns": netns})


def test_check_sets_missing(conf, netns, nsexec, module):
    nsexec("nft", "add table inet splitroute; add set inet splitroute wg0_v4 { type ipv4_addr; }")
    args = {"path": str(conf), "groups": [group()], "check_sets": True, "netns": netns}
    result = module("dnsmasq_nftset", args, expect_fail=True)
    assert "nftables set inet splitroute wg0_v6 (group wg0) does not exist in network namespace" in result["msg"]
    assert "wg0_v4" not in result["msg"]
    assert not conf.exists()


def test_check_sets_wrong_type(conf, netns, nsexec, module):
    make_sets(nsexec, v6_type="ipv4_addr")
    args = {"path": str(conf), "layout": "back", "groups": [group()], "check_sets": True, "netns": netns}
    result = module("dnsmasq_nftset", args, expect_fail=True)
    assert 'wg0_v6 (group wg0) has type "ipv4_addr"' in result["msg"]
    assert "the 6# side of nftset needs type ipv6_addr" in result["msg"]
    assert not conf.exists()


def test_check_sets_without_the_netns_looks_in_the_wrong_place(conf, netns, nsexec, module):
    make_sets(nsexec)
    result = module("dnsmasq_nftset", {"path": str(conf), "groups": [group()], "check_sets": True}, expect_fail=True)
    assert "does not exist" in result["msg"]


# ---- a real dnsmasq fills the sets ---------------------------------------------------------------

UPSTREAM = "127.0.0.2"
ANSWERS = {
    "listed.test": ("198.51.100.10", "2001:db8::10"),
    "www.listed.test": ("198.51.100.11", "2001:db8::11"),
    "unlisted.test": ("198.51.100.20", "2001:db8::20"),
}


@pytest.fixture
def dnsmasq(netns, nsexec, tmp_path):
    """Start dnsmasq processes inside the namespace; all are stopped afterwards, also on failure."""
    procs = []
    nsexec("ip", "addr", "add", "%s/8" % UPSTREAM, "dev", "lo")
    nsexec("ip", "addr", "add", "127.0.0.53/8", "dev", "lo")

    def start(name, address, port, *options):
        log = open(tmp_path / ("%s.log" % name), "w")  # closed in the finalizer
        cmd = [
            "ip", "netns", "exec", netns, "dnsmasq", "--keep-in-foreground", "--log-facility=-", "--pid-file=",
            "--no-hosts", "--no-resolv", "--bind-interfaces", "--listen-address=%s" % address, "--port=%d" % port,
            *options,
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        for _attempt in range(50):  # any answer means it listens; a name no resolver knows fills no set
            probe = nsexec("dig", "+time=1", "+tries=1", "-p", str(port), "@" + address, "probe.invalid", check=False)
            if probe.returncode == 0:
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        log.flush()
        raise AssertionError("dnsmasq %s did not start:\n%s" % (name, (tmp_path / ("%s.log" % name)).read_text()))

    def upstream():
        options = ["--address=/%s/%s" % (name, addr) for name, addrs in ANSWERS.items() for addr in addrs]
        return start("upstream", UPSTREAM, 53, "--conf-file=/dev/null", *options)

    start.upstream = upstream
    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(nsexec, name, rtype):
    out = nsexec("dig", "+short", "+time=2", "+tries=1", "@127.0.0.1", name, rtype).stdout.split()
    return out


def set_elements(nsexec, name):
    data = json.loads(nsexec("nft", "-j", "list", "set", "inet", "splitroute", name).stdout)
    for item in data["nftables"]:
        if "set" in item:
            return sorted(e["elem"]["val"] if isinstance(e, dict) else e for e in item["set"].get("elem", []))
    raise AssertionError("no set in %r" % data)


def resolve_all(nsexec):
    for name, (v4, v6) in ANSWERS.items():
        assert query(nsexec, name, "A") == [v4], name
        assert query(nsexec, name, "AAAA") == [v6], name


def test_real_dnsmasq_flat(conf, netns, nsexec, module, dnsmasq):
    make_sets(nsexec)
    dnsmasq.upstream()
    args = {
        "path": str(conf),
        "check_sets": True,
        "netns": netns,
        "groups": [group(domains=["Listed.TEST."], servers=[UPSTREAM])],
    }
    module("dnsmasq_nftset", args)
    assert set_elements(nsexec, "wg0_v4") == []
    dnsmasq("flat", "127.0.0.1", 53, "--conf-file=%s" % conf, "--server=%s" % UPSTREAM, "--cache-size=0")
    resolve_all(nsexec)
    assert set_elements(nsexec, "wg0_v4") == ["198.51.100.10", "198.51.100.11"]
    assert set_elements(nsexec, "wg0_v6") == ["2001:db8::10", "2001:db8::11"]


@pytest.fixture
def world_readable_dir():
    """dnsmasq reads a servers-file after dropping to user nobody: pytest's tmp_path (0700) would hide it."""
    directory = tempfile.mkdtemp(prefix="srt-dnsmasq-")
    os.chmod(directory, 0o755)
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


def test_real_dnsmasq_two_tier(tmp_path, netns, nsexec, module, dnsmasq, world_readable_dir):
    make_sets(nsexec)
    dnsmasq.upstream()
    front = world_readable_dir / "front.servers"
    back = tmp_path / "back.conf"
    wg0 = group(domains=["listed.test"], servers=[UPSTREAM], back_server="127.0.0.53#5301")
    module("dnsmasq_nftset", {"path": str(front), "layout": "front", "groups": [wg0]})
    module("dnsmasq_nftset", {"path": str(back), "layout": "back", "groups": [wg0], "check_sets": True, "netns": netns})
    dnsmasq("back", "127.0.0.53", 5301, "--conf-file=%s" % back, "--cache-size=0")
    dnsmasq(
        "front", "127.0.0.1", 53, "--conf-file=/dev/null", "--servers-file=%s" % front,
        "--server=%s" % UPSTREAM, "--cache-size=0",
    )  # fmt: skip
    resolve_all(nsexec)
    assert set_elements(nsexec, "wg0_v4") == ["198.51.100.10", "198.51.100.11"]
    assert set_elements(nsexec, "wg0_v6") == ["2001:db8::10", "2001:db8::11"]
    front_log = (tmp_path / "front.log").read_text()
    assert "using nameserver 127.0.0.53#5301 for domain listed.test" in front_log


def test_dnsmasq_facts_the_module_relies_on(tmp_path, nsexec, dnsmasq):
    """dnsmasq 2.90: two nftset= lines for one domain fill only the first; a wildcard matches nothing."""
    make_sets(nsexec)
    nsexec("nft", "add set inet splitroute wildcard { type ipv4_addr; }")
    dnsmasq.upstream()
    by_hand = tmp_path / "by-hand.conf"
    by_hand.write_text(
        "nftset=/listed.test/4#inet#splitroute#wg0_v4\n"
        "nftset=/listed.test/6#inet#splitroute#wg0_v6\n"
        "nftset=/*.unlisted.test/4#inet#splitroute#wildcard\n"
    )
    dnsmasq("by-hand", "127.0.0.1", 53, "--conf-file=%s" % by_hand, "--server=%s" % UPSTREAM, "--cache-size=0")
    resolve_all(nsexec)
    assert nsexec("dig", "+short", "@127.0.0.1", "www.unlisted.test").stdout.split() == ["198.51.100.20"]
    assert set_elements(nsexec, "wg0_v4") == ["198.51.100.10", "198.51.100.11"]
    assert set_elements(nsexec, "wg0_v6") == []  # the second line for the same domain is ignored
    assert set_elements(nsexec, "wildcard") == []  # accepted by dnsmasq --test, matches no name


# ---- issue 11: file arguments, netns and types are checked before anything is written --------------

BAD_FILE_ARGS = {
    "mode not octal": ({"mode": "999"}, "mode '999' must be in octal (0644) or symbolic (u=rw,g=r,o=r) form"),
    "bad symbolic mode": ({"mode": "u=rwz"}, "mode 'u=rwz' must be in octal"),
    "mode beyond permission bits": ({"mode": 0o177777}, "only permission bits (0000-07777) are allowed"),
    "mode as a list": ({"mode": ["0644"]}, "mode must be an octal string such as '0644' or a symbolic mode, not list"),
    "unknown owner": ({"owner": "srt-no-such-user"}, "owner 'srt-no-such-user': no such user on this host"),
    "unknown group": ({"group": "srt-no-such-group"}, "group 'srt-no-such-group': no such group on this host"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILE_ARGS))
@pytest.mark.parametrize("existing", [True, False], ids=["existing file", "new file"])
def test_bad_file_arguments_write_nothing(conf, module, private_tmp, case, existing):
    over, message = BAD_FILE_ARGS[case]
    if existing:
        conf.write_text("# before\nnftset=/keep.example/4#inet#splitroute#wg0_v4\n")
    before = snapshot(conf)
    for check in (True, False):
        result = module("dnsmasq_nftset", dict(over, path=str(conf), groups=[group()]), check=check, expect_fail=True)
        assert result["msg"].startswith("invalid input, nothing was changed: ")
        assert message in result["msg"]
        assert snapshot(conf) == before
    assert sorted(os.listdir(conf.parent)) == (["splitroute.conf"] if existing else [])
    assert list(private_tmp.iterdir()) == []


def test_symbolic_mode_still_works(conf, four):
    four("dnsmasq_nftset", {"path": str(conf), "groups": [group()], "mode": "u=rw,g=r,o="})
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640


def test_empty_netns_is_refused(conf, module):
    for check_sets in (False, True):
        args = {"path": str(conf), "groups": [group()], "netns": "", "check_sets": check_sets}
        result = module("dnsmasq_nftset", args, expect_fail=True)
        assert "netns '' is invalid" in result["msg"]
        assert not conf.exists()


def test_stale_netns_file_is_a_clear_error(conf, module, tmp_path):
    name = "srt-stale-%s" % tmp_path.name[-8:]
    path = "/run/netns/%s" % name
    open(path, "w").close()
    try:
        args = {"path": str(conf), "groups": [group()], "netns": name, "check_sets": True}
        result = module("dnsmasq_nftset", args, expect_fail=True)
        assert "%s exists but is not a network namespace" % path in result["msg"]
        assert not conf.exists()
    finally:
        os.unlink(path)


WRONG_TYPES = {
    "path as a list": ({"path": ["/tmp/x.conf"]}, "path: must be a string, not list"),
    "groups as a dict": ({"groups": {"name": "wg0"}}, "groups: must be a list, not dict"),
    "group as a string": ({"groups": ["wg0"]}, "groups[0]: must be a dictionary, not str"),
    "group name as a list": ({"groups": [group(name=["wg0"])]}, "groups[0].name: must be a string, not list"),
    "group name as a dict": ({"groups": [group(name={"a": 1})]}, "groups[0].name: must be a string, not dict"),
    "domains as a string": (
        {"groups": [dict(group(), domains="netflix.com")]},
        "groups[0].domains: must be a list, not str",
    ),
    "domains as a number": ({"groups": [dict(group(), domains=5)]}, "groups[0].domains: must be a list, not int"),
    "domain as a list": ({"groups": [group(domains=[["a.example"]])]}, "groups[0].domains[0]: must be a string"),
    "sets as a dict": ({"groups": [group(sets=SETS[0])]}, "groups[0].sets: must be a list, not dict"),
    "set table as a list": (
        {"groups": [group(sets=[dict(SETS[0], table=["t"])])]},
        "groups[0].sets[0].table: must be a string, not list",
    ),
    "servers as a string": ({"groups": [group(servers="10.0.0.1")]}, "groups[0].servers: must be a list, not str"),
    "back_server as a dict": (
        {"layout": "front", "groups": [group(back_server={"a": 1})]},
        "groups[0].back_server: must be a string, not dict",
    ),
    "netns as a list": ({"netns": ["x"]}, "netns: must be a string, not list"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_types_are_named(conf, module, case):
    over, message = WRONG_TYPES[case]
    args = dict({"path": str(conf), "groups": [group()]}, **over)
    result = module("dnsmasq_nftset", args, expect_fail=True)
    assert message in result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert not conf.exists()
