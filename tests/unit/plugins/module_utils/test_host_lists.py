"""The client's lists on the host: `splitroute refresh` and `splitroute apply`, run by the host's Python (no
ansible) in a throwaway namespace, against the lab's list server (lab/playbooks/files/srlab-lists.py) over
HTTP and HTTPS with a CA made here, with real nftables sets and dnsmasq --test."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from host_program import install, run  # tests/host_program.py

from ansible_collections.splitroute.vpn.plugins.module_utils import _dnsmasq, _host, _host_lists, _lists, _names

ROOT = Path(__file__).resolve().parents[4]
SERVER = ROOT / "lab" / "playbooks" / "files" / "srlab-lists.py"


# what a server certificate needs where Python verifies strictly (3.13: VERIFY_X509_STRICT)
STRICT_SERVER_EXT = (
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and a server certificate for 127.0.0.1 and ::1 (and another CA the server's is not from)."""
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", "/CN=test %s" % ca, "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", "%s.key" % ca, "-out", "%s.pem" % ca,
                 cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)  # fmt: skip
    (d / "ext").write_text(STRICT_SERVER_EXT + "subjectAltName=IP:127.0.0.1,IP:::1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext", "-out", "server.pem", cwd=d)  # fmt: skip
    der = subprocess.run(
        ["openssl", "x509", "-in", d / "server.pem", "-outform", "DER"], capture_output=True, check=True
    )
    return {"dir": d, "ca": (d / "ca.pem").read_text(), "other": (d / "other.pem").read_text(),
            "pin": hashlib.sha256(der.stdout).hexdigest()}  # fmt: skip


@pytest.fixture
def lab(tmp_path, netns, nsexec, pki):
    """The program, a plan directory, the list server's directory and the server itself, in NETNS."""
    program, plans = install(tmp_path)
    root = tmp_path / "served"
    root.mkdir()
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, "/usr/bin/python3", str(SERVER), "--root", str(root), "--http", "8080",
         "--https", "8443", "--cert", str(pki["dir"] / "server.pem"), "--key", str(pki["dir"] / "server.key")],
    )  # fmt: skip
    for _attempt in range(100):
        if nsexec("sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8443", check=False).returncode == 0:
            break
        time.sleep(0.05)
    yield {"program": program, "plans": plans, "root": root, "tmp": tmp_path, "netns": netns, "nsexec": nsexec}
    server.kill()
    server.wait()


def write_plan(lab, tunnels):
    """A client plan of TUNNELS [(name, static domains, sources)] and the table with their sets."""
    tmp = lab["tmp"]
    plan = {
        "role": "client",
        "version": _host.PLAN_VERSION,
        "tunnels": [
            {
                "name": name,
                "domains": domains,
                "has_v4": True,
                "has_v6": True,
                "sources": [
                    dict(_lists.SOURCE_DEFAULTS, id=_lists.source_id(name, s.get("url") or s.get("path")), **s)
                    for s in sources
                ],
            }
            for name, domains, sources in tunnels
        ],
        "nft": {"table": _names.NFT_TABLE, "file": str(tmp / "client.nft")},
        "paths": {
            "front_servers": str(tmp / "dns" / "front-servers.conf"),
            "front_base": str(tmp / "dns" / "base.conf"),
        },
        "lists": {"dir": str(tmp / "lists")},
        "front_groups": [
            {"name": name, "domains": domains, "back_server": "127.0.0.1#%d" % (5301 + i)}
            for i, (name, domains, _s) in enumerate(tunnels)
        ],
    }
    sets = "".join(
        "  set %s { type ipv%d_addr; flags interval; auto-merge; }\n" % (_names.src_set(name, f), f)
        for name, _d, _s in tunnels
        for f in (4, 6)
    )
    Path(plan["nft"]["file"]).write_text("table inet splitroute {\n%s}\n" % sets)
    lab["nsexec"]("nft", "-f", plan["nft"]["file"])
    (lab["plans"] / "client.json").write_text(json.dumps(plan))
    return plan


def splitroute(lab, *args):
    proc = run(lab["program"], lab["plans"], "--role", "client", *args, netns=lab["netns"])
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def servers(plan):
    """The front's lists: its base and the changes since (no front runs here: apply keeps the base whole)."""
    paths = [Path(plan["paths"][key]) for key in ("front_base", "front_servers")]
    return "".join(p.read_text() for p in paths) if paths[0].exists() else None


def state(plan, index=0, tunnel=0):
    sid = plan["tunnels"][tunnel]["sources"][index]["id"]
    return json.loads((Path(plan["lists"]["dir"]) / (sid + ".json")).read_text())


def set_elements(lab, name):
    out = lab["nsexec"]("nft", "list", "set", "inet", "splitroute", name).stdout
    return out.split("elements = {", 1)[1].split("}", 1)[0].split(",") if "elements" in out else []


def requests(lab):
    log = lab["root"] / "requests.log"
    return log.read_text().splitlines() if log.exists() else []


LIST = """# a published list
example.com
server=/api.example.net/10.0.0.1
0.0.0.0 ads.example.org
198.51.100.0/25
2001:db8:5::/48
"""


def test_a_fetched_list_goes_live_and_a_304_rewrites_nothing(lab):
    (lab["root"] / "l.txt").write_text(LIST)
    plan = write_plan(lab, [("wg0", ["static.example"], [{"url": "http://127.0.0.1:8080/l.txt", "interval": 60}])])
    proc = splitroute(lab, "refresh", "--json")
    assert proc.returncode == 0, proc.stderr
    text = servers(plan)
    for domain in ("static.example", "example.com", "api.example.net", "ads.example.org"):
        assert "server=/%s/127.0.0.1#5301\n" % domain in text
    assert [e.strip() for e in set_elements(lab, "wg0_src4")] == ["198.51.100.0/25"]
    assert [e.strip() for e in set_elements(lab, "wg0_src6")] == ["2001:db8:5::/48"]
    got = state(plan)
    assert got["domains"] == 3 and got["networks"] == 2 and got["invalid"] == 0 and got["last_error"] is None
    assert got["etag"] and got["last_success"] == got["last_fetch"]
    # not due yet: nothing fetched
    assert splitroute(lab, "refresh").returncode == 0 and len(requests(lab)) == 1
    # due (forced): a conditional request, 304, nothing rewritten
    mtime = [os.stat(plan["paths"][key]).st_mtime_ns for key in ("front_base", "front_servers")]
    proc = splitroute(lab, "refresh", "--force", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["applied"] is None, proc.stdout
    assert requests(lab)[-1] == "/l.txt 304"
    assert [os.stat(plan["paths"][key]).st_mtime_ns for key in ("front_base", "front_servers")] == mtime
    assert state(plan)["last_result"] == "not-modified"
    # the role's apply on the same host: nothing to change
    assert json.loads(splitroute(lab, "apply", "--json").stdout)["changed"] is False
    # a domain added and one removed upstream
    (lab["root"] / "l.txt").write_text(LIST.replace("example.com", "new.example.com"))
    assert splitroute(lab, "refresh", "--force").returncode == 0
    text = servers(plan)
    assert "server=/new.example.com/" in text and "server=/example.com/" not in text


@pytest.mark.parametrize(
    ("mode", "body", "reason"),
    [
        ("500", None, "HTTP 500"),
        ("html", None, "an HTML page"),
        ("empty", None, "an empty body"),
        (None, "ok.example\nevil.example\nserver=/x/1.1.1.1\n#\nbad,name.example\nbad/name\nsp ace\n", "invalid lines"),
        (None, "# only comments\n\n", "no domain or network"),
    ],
)
def test_a_broken_list_keeps_the_last_good_one(lab, mode, body, reason):
    (lab["root"] / "l.txt").write_text("good.example\n")
    source = {"url": "http://127.0.0.1:8080/l.txt", "interval": 60, "max_invalid": 2}
    plan = write_plan(lab, [("wg0", [], [source])])
    assert splitroute(lab, "refresh").returncode == 0
    before = servers(plan)
    assert "server=/good.example/" in before
    if mode:
        (lab["root"] / "l.txt.mode").write_text(mode)
    else:
        (lab["root"] / "l.txt").write_text(body)
    proc = splitroute(lab, "refresh", "--force")
    assert proc.returncode == 0 and "its last good copy stays" in proc.stderr and reason in proc.stderr
    assert servers(plan) == before
    got = state(plan)
    assert reason in got["last_error"] and got["last_result"] == "failed" and got["failures"] == 1
    assert got["last_success"] < got["last_fetch"]
    if body and "evil" in body:
        assert got["invalid"] == 3 and got["invalid_sample"][0][0] == 5  # counted, with line numbers
        assert "evil" not in servers(plan)


def test_https_with_its_own_ca_and_a_pin(lab, pki):
    (lab["root"] / "l.txt").write_text("tls.example\n")
    url = "https://127.0.0.1:8443/l.txt"
    cases = [
        ({"ca": pki["ca"]}, None),
        ({"ca": pki["ca"], "sha256": pki["pin"]}, None),
        ({"ca": pki["ca"], "sha256": "00" * 32}, "the pin is"),
        ({"ca": pki["other"]}, "TLS"),
        ({}, "TLS"),  # the system store does not know the test CA
    ]
    for extra, error in cases:
        plan = write_plan(lab, [("wg0", [], [dict({"url": url, "interval": 60}, **extra)])])
        for stale in Path(plan["lists"]["dir"]).glob("*") if Path(plan["lists"]["dir"]).exists() else []:
            stale.unlink()
        proc = splitroute(lab, "refresh", "--force")
        if error is None:
            assert proc.returncode == 0, proc.stderr
            assert "server=/tls.example/" in servers(plan)
        else:
            assert proc.returncode == 0 and error in state(plan)["last_error"], (extra.keys(), proc.stderr)


def test_a_file_on_the_host_is_read_again_only_when_it_changed(lab):
    path = lab["tmp"] / "host.list"
    path.write_text("file.example\n")
    plan = write_plan(lab, [("wg0", [], [{"path": str(path), "interval": 60}])])
    assert splitroute(lab, "refresh").returncode == 0
    assert "server=/file.example/" in servers(plan)
    assert splitroute(lab, "refresh", "--force").returncode == 0
    assert state(plan)["last_result"] == "not-modified"
    path.write_text("file2.example\n")
    assert splitroute(lab, "refresh", "--force").returncode == 0
    assert "server=/file2.example/" in servers(plan) and "file.example/" not in servers(plan)
    path.unlink()
    assert splitroute(lab, "refresh", "--force").returncode == 0
    assert "No such file" in state(plan)["last_error"]
    assert "server=/file2.example/" in servers(plan)


def test_a_domain_of_two_tunnels_goes_to_the_first_and_counts_as_a_conflict(lab):
    (lab["root"] / "a.txt").write_text("both.example\na.example\n")
    (lab["root"] / "b.txt").write_text("both.example\nb.example\nstatic0.example\n")
    plan = write_plan(
        lab,
        [
            ("wg0", ["static0.example"], [{"url": "http://127.0.0.1:8080/a.txt", "interval": 60}]),
            ("wg1", [], [{"url": "http://127.0.0.1:8080/b.txt", "interval": 60}]),
        ],
    )
    proc = splitroute(lab, "refresh", "--json")
    assert proc.returncode == 0, proc.stderr
    text = servers(plan)
    assert "server=/both.example/127.0.0.1#5301" in text and "server=/both.example/127.0.0.1#5302" not in text
    assert "server=/static0.example/127.0.0.1#5301" in text and "static0.example/127.0.0.1#5302" not in text
    assert "server=/b.example/127.0.0.1#5302" in text
    applied = json.loads((Path(plan["lists"]["dir"]) / "applied.json").read_text())
    sid = plan["tunnels"][1]["sources"][0]["id"]
    assert applied["conflicts"][sid]["count"] == 2
    assert sorted(map(tuple, applied["conflicts"][sid]["sample"])) == [
        ("both.example", "wg0"),
        ("static0.example", "wg0"),
    ]


def test_apply_check_writes_nothing_and_a_removed_source_leaves_nothing(lab):
    (lab["root"] / "l.txt").write_text("one.example\n10.9.0.0/16\n")
    source = {"url": "http://127.0.0.1:8080/l.txt", "interval": 60}
    plan = write_plan(lab, [("wg0", [], [source])])
    assert splitroute(lab, "refresh").returncode == 0
    plan = write_plan(lab, [("wg0", ["kept.example"], [])])
    before = servers(plan)
    proc = splitroute(lab, "apply", "--check", "--json")
    result = json.loads(proc.stdout)
    assert result["changed"] and result["servers_file"] and result["sets"] == ["wg0_src4"]
    assert servers(plan) == before and set_elements(lab, "wg0_src4")
    assert json.loads(splitroute(lab, "apply", "--json").stdout)["changed"]
    assert servers(plan).count("server=/") == 1 and "kept.example" in servers(plan)
    assert set_elements(lab, "wg0_src4") == []
    assert sorted(p.name for p in Path(plan["lists"]["dir"]).iterdir()) == ["applied.json"]
    assert json.loads(splitroute(lab, "apply", "--json").stdout)["changed"] is False


DNSMASQ = ("dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces", "--pid-file=",
           "--user=root", "--cache-size=0")  # fmt: skip
# the back resolvers of two tunnels and the upstream, each answering every name with its own address
ANSWERS = {"127.0.0.1#5301": "198.51.100.1", "127.0.0.1#5302": "198.51.100.2", "127.0.0.2#53": "198.51.100.9"}
A, B = "127.0.0.1#5301", "127.0.0.1#5302"


class RunningFront:
    """A front resolver in NETNS as the unit runs it (front.conf's options, then --conf-file=BASE, with
    the servers-file), driven as _host_lists.Front drives the unit: its PID, a SIGHUP, a restart."""

    def __init__(self, netns, nsexec, paths):
        self.netns, self.nsexec, self.paths, self.proc = netns, nsexec, paths, None

    def start(self):
        self.started = time.time()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *DNSMASQ, "--listen-address=127.0.0.1", "--port=53",
             "--server=127.0.0.2", "--servers-file=%s" % self.paths["front_servers"],
             "--conf-file=%s" % self.paths["front_base"]],
        )  # fmt: skip
        wait_for(lambda: self.answer("up.example") == ANSWERS["127.0.0.2#53"])

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def reload(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def restart(self):
        self.proc.terminate()
        self.proc.wait()
        self.start()

    def answer(self, name):
        return self.nsexec("dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", name, "A", check=False).stdout.strip()


def wait_for(predicate, limit=5.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "not within %.0f s" % limit
        time.sleep(0.05)


def routes(*pairs):
    return "".join("server=/%s/%s\n" % pair for pair in pairs)


@pytest.fixture
def front(tmp_path, netns, nsexec):
    nsexec("ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
    backs = [
        subprocess.Popen(["ip", "netns", "exec", netns, *DNSMASQ, "--listen-address=%s" % host, "--port=%s" % port,
                          "--address=/#/%s" % address])
        for (host, port), address in ((server.split("#"), address) for server, address in ANSWERS.items())
    ]  # fmt: skip
    paths = {"front_base": str(tmp_path / "dns" / "front-base.conf"),
             "front_servers": str(tmp_path / "dns" / "front-servers.conf")}  # fmt: skip
    running = RunningFront(netns, nsexec, paths)
    yield running
    for proc in backs + ([running.proc] if running.proc else []):
        proc.kill()
        proc.wait()


def test_the_front_takes_a_change_by_sighup_and_restarts_on_a_new_base_only_when_it_must(front):
    paths = front.paths
    first = routes(("a.example", A), ("b.example", A), ("sub.c.example", A))
    # not running: the base is the whole list, the servers-file empty
    assert _host_lists.apply_front(paths, first, front) == "written"
    assert Path(paths["front_base"]).read_text() == first
    assert Path(paths["front_servers"]).read_text() == _host_lists.OVERRIDES_HEADER
    # systemd starts the front well after the role wrote its base (process_start is to the clock tick)
    time.sleep(0.02)
    front.start()
    assert abs(_host_lists.process_start(front.pid()) - front.started) < 1
    assert _host_lists.front_state(front, paths["front_base"]) == "current"
    assert _host_lists.apply_front(paths, first, front) is None
    assert [front.answer(n) for n in ("w.a.example", "c.example", "sub.c.example")] == [
        ANSWERS[A], ANSWERS["127.0.0.2#53"], ANSWERS[A]]  # fmt: skip
    # a removed domain, one added to the other tunnel, a parent added: a SIGHUP, the same process
    pid, base_mtime = front.pid(), os.stat(paths["front_base"]).st_mtime_ns
    second = routes(("b.example", A), ("sub.c.example", A), ("c.example", A), ("x.example", B))
    assert _host_lists.apply_front(paths, second, front, check=True) == "reload"
    assert Path(paths["front_servers"]).read_text() == _host_lists.OVERRIDES_HEADER
    assert _host_lists.apply_front(paths, second, front) == "reload"
    wait_for(lambda: front.answer("w.a.example") == ANSWERS["127.0.0.2#53"])
    assert [front.answer(n) for n in ("x.example", "w.c.example", "b.example")] == [ANSWERS[B], ANSWERS[A], ANSWERS[A]]
    assert front.pid() == pid and os.stat(paths["front_base"]).st_mtime_ns == base_mtime
    assert _host_lists.apply_front(paths, second, front) is None
    # a domain moved to the other tunnel: both would answer for it, so a new base and a restart
    third = routes(("b.example", B), ("sub.c.example", A), ("c.example", A), ("x.example", B))
    assert _host_lists.apply_front(paths, third, front) == "restart"
    assert front.pid() != pid and Path(paths["front_base"]).read_text() == third
    assert _host_lists.front_state(front, paths["front_base"]) == "current"
    assert Path(paths["front_servers"]).read_text() == _host_lists.OVERRIDES_HEADER
    assert [front.answer(n) for n in ("b.example", "w.a.example", "x.example")] == [
        ANSWERS[B], ANSWERS["127.0.0.2#53"], ANSWERS[B]]  # fmt: skip
    # more work than the limit allows: the same
    pid = front.pid()
    fourth = third + routes(("y.example", A))
    assert _host_lists.apply_front(paths, fourth, front, limit=0) == "restart"
    assert front.pid() != pid and front.answer("y.example") == ANSWERS[A]
    # a base newer than the running front (a stop between writing it and the restart): a restart
    pid = front.pid()
    os.utime(paths["front_base"], (time.time() + 5, time.time() + 5))
    assert _host_lists.front_state(front, paths["front_base"]) == "stale"
    assert _host_lists.apply_front(paths, fourth, front) == "restart" and front.pid() != pid
    os.utime(paths["front_base"], (time.time() - 5, time.time() - 5))
    assert _host_lists.apply_front(paths, fourth, front) is None


def test_a_front_that_runs_without_the_base_is_not_signalled(front):
    """A unit of an older release (no --conf-file=BASE): apply writes, the role's restart loads it."""
    first = routes(("a.example", A))
    assert _host_lists.apply_front(front.paths, first, front) == "written"
    time.sleep(0.02)
    front.start()
    other = dict(front.paths, front_base=front.paths["front_base"] + ".other")
    assert _host_lists.front_state(front, other["front_base"]) is None
    pid = front.pid()
    assert _host_lists.apply_front(other, routes(("b.example", A)), front) == "written" and front.pid() == pid


def test_front_overrides_carry_removals_and_additions_but_not_moves():
    base = {"a.example": A, "sub.a.example": A, "b.example": A}
    # the same routes, a child kept by its parent: nothing
    assert _dnsmasq.front_overrides(base, {"a.example": A, "b.example": A}) == ([], 0)
    lines, work = _dnsmasq.front_overrides(base, {"b.example": A, "x.example": B})
    assert lines == ["server=/a.example/#", "server=/sub.a.example/#", "server=/x.example/%s" % B]
    assert work == 1 * (3 + 1)
    # moved, or left under a parent that moved: not expressible
    assert _dnsmasq.front_overrides(base, {"a.example": A, "b.example": B}) is None
    assert _dnsmasq.front_overrides(base, {"a.example": B, "b.example": A}) is None
    assert _dnsmasq.server_routes("# c\nserver=/a.example/%s\nnftset=/b/4#inet#t#s\n" % A) == {"a.example": A}


def test_status_and_metrics_show_every_source(lab):
    (lab["root"] / "l.txt").write_text("shown.example\n10.8.0.0/16\n")
    good = {"url": "http://127.0.0.1:8080/l.txt", "interval": 60}
    bad = {"url": "http://127.0.0.1:8080/missing.txt", "interval": 60}
    plan = write_plan(lab, [("wg0", [], [good, bad])])
    assert splitroute(lab, "refresh").returncode == 0
    proc = run(lab["program"], lab["plans"], "status", "--json", netns=lab["netns"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    by_source = {e["source"]: e for e in report["lists"]}
    assert by_source[good["url"]]["ok"] and by_source[good["url"]]["domains"] == 1
    assert by_source[good["url"]]["networks"] == 1 and by_source[good["url"]]["last_success"] > 0
    assert not by_source[bad["url"]]["ok"] and "HTTP 404" in by_source[bad["url"]]["last_error"]
    assert any("missing.txt of wg0: HTTP 404" in p and "no good copy yet" in p for p in report["problems"])
    assert any(line.startswith("  list %s (wg0): ok, 1 domains, 1 networks" % good["url"]) for line in report["lines"])
    metrics = report["metrics"]
    assert 'splitroute_list_ok{host="%s",tunnel="wg0",source="%s"} 1' % (report["host"], good["url"]) in metrics
    assert 'splitroute_list_ok{host="%s",tunnel="wg0",source="%s"} 0' % (report["host"], bad["url"]) in metrics
    assert 'splitroute_list_failures{host="%s",tunnel="wg0",source="%s"} 1' % (report["host"], bad["url"]) in metrics
    assert plan["tunnels"][0]["sources"][1]["id"] not in metrics


def test_a_slow_or_oversized_list_is_cut_off_by_its_limits(lab):
    (lab["root"] / "l.txt").write_text("big.example\n" * 100)
    plan = write_plan(lab, [("wg0", [], [{"url": "http://127.0.0.1:8080/l.txt", "interval": 60, "max_bytes": 500}])])
    assert splitroute(lab, "refresh").returncode == 0
    assert "more than the limit of 500" in state(plan)["last_error"]
    (lab["root"] / "l.txt.mode").write_text("hang")
    plan = write_plan(lab, [("wg0", [], [{"url": "http://127.0.0.1:8080/l.txt", "interval": 60, "timeout": 1}])])
    started = time.monotonic()
    assert splitroute(lab, "refresh", "--force").returncode == 0
    assert state(plan)["last_error"] == "timed out" and time.monotonic() - started < 10


# ---------------------------------------------------------------- pre-resolution


class Responder:
    """A UDP DNS responder on 127.0.0.1 that answers every query NOERROR (or drops those for DROP), recording
    (time, name, qtype) of each."""

    def __init__(self, drop=()):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.seen, self.drop, self.stop = [], set(drop), False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                message, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            labels, pos = [], 12
            while message[pos]:
                labels.append(message[pos + 1 : pos + 1 + message[pos]].decode())
                pos += 1 + message[pos]
            name, qtype = ".".join(labels), struct.unpack(">H", message[pos + 1 : pos + 3])[0]
            self.seen.append((time.monotonic(), name, qtype))
            if name not in self.drop:
                self.sock.sendto(message[:2] + struct.pack(">H", 0x8180) + message[4:], peer)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def test_preresolve_asks_every_name_of_its_tunnels_once_at_the_rate_given():
    plan = {"tunnels": [
        {"name": "wg0", "preresolve": True, "has_v4": True, "has_v6": False},
        {"name": "wg1", "preresolve": False},
        {"name": "wg2", "preresolve": True, "has_v4": True, "has_v6": True},
    ]}  # fmt: skip
    merged = {
        "wg0": {"domains": ["a%d.example" % i for i in range(10)]},
        "wg1": {"domains": ["never.example"]},
        "wg2": {"domains": ["b%d.example" % i for i in range(5)]},
    }
    queries = _host_lists.preresolve_queries(plan, merged)
    assert len(queries) == 10 + 2 * 5 and ("never.example", 1) not in queries
    assert ("a0.example", 28) not in queries and ("b0.example", 28) in queries
    responder = Responder()
    try:
        started = time.monotonic()
        counts = _host_lists.resolve_all(queries, responder.address, rate=10)
        elapsed = time.monotonic() - started
    finally:
        responder.close()
    assert counts == {"asked": 20, "answered": 20, "failed": 0, "timed_out": 0}
    assert sorted((n, t) for _at, n, t in responder.seen) == sorted(queries)
    # 20 queries at 10 a second: the last one 1.9 s after the first, never faster
    times = [at for at, _n, _t in responder.seen]
    assert times[-1] - times[0] >= 1.8 and elapsed >= 1.8
    assert all(later - earlier >= 0.05 for earlier, later in zip(times, times[1:]))


def test_preresolve_gives_up_on_a_query_without_an_answer():
    responder = Responder(drop={"silent.example"})
    try:
        counts = _host_lists.resolve_all([("ok.example", 1), ("silent.example", 1)], responder.address, rate=100)
    finally:
        responder.close()
    assert counts == {"asked": 2, "answered": 1, "failed": 0, "timed_out": 1}


def test_a_doh_list_fills_the_doh_sets_with_the_built_in_resolvers_and_keeps_its_last_good_copy(lab):
    """dns_bypass.doh_sources: the list's addresses and networks join the plan's (the built-in list and
    doh_addresses) in bypass_doh4/6 by `splitroute refresh`; a domain in it is no address (left out), bad lines are
    counted as in any list, and a list that went bad keeps its last good copy in the sets."""
    (lab["root"] / "doh.txt").write_text("# DoH resolvers\n198.51.100.230\n203.0.113.0/24\n2001:db8:100::30\n"
                                         "dns.example.net\n")  # fmt: skip
    plan = write_plan(lab, [("wg0", [], [])])
    source = dict(_lists.SOURCE_DEFAULTS, url="http://127.0.0.1:8080/doh.txt", interval=60, max_invalid=1)
    source["id"] = _lists.source_id(_names.DNS_BYPASS_SOURCES, source["url"])
    plan["bypass"] = {"doh4": ["1.1.1.1/32", "198.51.100.230/32"], "doh6": ["2606:4700:4700::1111/128"],
                      "doh_sources": [source]}  # fmt: skip
    (lab["plans"] / "client.json").write_text(json.dumps(plan))
    sets = "".join("  set %s { type ipv%d_addr; flags interval; auto-merge; }\n" % (_names.BYPASS_DOH_SETS[f], f)
                   for f in (4, 6))  # fmt: skip
    lab["nsexec"]("nft", "-f", "-", input="table inet splitroute {\n%s}\n" % sets)
    proc = splitroute(lab, "refresh", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [e.strip() for e in set_elements(lab, "bypass_doh4")] == ["1.1.1.1", "198.51.100.230", "203.0.113.0/24"]
    assert [e.strip() for e in set_elements(lab, "bypass_doh6")] == ["2001:db8:100::30", "2606:4700:4700::1111"]
    got = json.loads((Path(plan["lists"]["dir"]) / (source["id"] + ".json")).read_text())
    assert got["networks"] == 3 and got["domains"] == 1 and got["last_error"] is None
    assert servers(plan) is None or "dns.example.net" not in servers(plan)  # a DoH list routes no name
    # the status shows it as the list of its owner
    from ansible_collections.splitroute.vpn.plugins.module_utils._host_status import list_states  # noqa: PLC0415

    assert [(e["tunnel"], e["networks"]) for e in list_states(plan)] == [(_names.DNS_BYPASS_SOURCES, 3)]
    assert json.loads(splitroute(lab, "apply", "--json").stdout)["changed"] is False
    # bad lines beyond max_invalid: the body is refused, the last good copy stays in the sets
    (lab["root"] / "doh.txt").write_text("198.51.100.231\nnot an address!\n1.2.3.4/99\n")
    assert splitroute(lab, "refresh", "--force").returncode == 0
    got = json.loads((Path(plan["lists"]["dir"]) / (source["id"] + ".json")).read_text())
    assert "invalid lines" in got["last_error"] and got["invalid"] == 2
    assert "203.0.113.0/24" in [e.strip() for e in set_elements(lab, "bypass_doh4")]
