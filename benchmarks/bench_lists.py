"""A 100,000-domain published list from URL to live, the way `splitroute refresh` takes it.

In a throwaway network namespace: the lab's list server (lab/playbooks/files/srlab-lists.py) serves the
list over HTTP; a back dnsmasq answers every name; a front dnsmasq reads its base (a conf-file) and its
servers-file, as on a client. One run measures, with the host program's own functions (_host_lists, no
ansible):

- fetch + validate (refresh_source: the GET, read_body, the last good copy written);
- compile (the merge of every source and the front's lines) and check + write (dnsmasq --test, the
  atomic replaces, the sets' transaction) and what the front is given: the first load of the list is
  more than a SIGHUP carries cheaply (_host_lists.WALK_LIMIT), so a new base and a restart;
- until the front answers a name that is only in the new list from the back;
- an update (1% of the served domains replaced): refresh, apply (a SIGHUP) until the front answers a new
  name from the back and a removed one from the upstream, in the same process;
- a 304 (the next refresh of an unchanged list): its cost against the full one;
- the baseline, in the same run: a cold start of the front with the same files.

Prints each stage's time, the total against the 10 s target and against the baseline, and the front's
memory (VmRSS) without a list and with it. BENCH_DOMAINS sets the list's size. Run as root: `make bench`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".cache" / "collections"))

from ansible_collections.splitroute.vpn.plugins.module_utils import _host_lists, _lists, _names  # noqa: E402

N = int(os.environ.get("BENCH_DOMAINS", "100000"))
SERVER = ROOT / "lab" / "playbooks" / "files" / "srlab-lists.py"
COMMON = ["no-resolv", "no-hosts", "no-poll", "bind-interfaces", "pid-file=", "user=root", "cache-size=1000"]


def sh(ns, *cmd, check=True):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, check=check)


def enter_netns(ns):
    """This process into network namespace NS (setns(2); os.setns is Python 3.12+)."""
    fd = os.open("/run/netns/%s" % ns, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def rss_kib(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def answers(ns, name, want):
    out = sh(ns, "dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", name, "A", check=False).stdout
    return want in out.split()


def wait_answer(ns, name, want, timeout=600):
    start = time.monotonic()
    while not answers(ns, name, want):
        if time.monotonic() - start > timeout:
            raise SystemExit("the front did not answer %s from the back within %d s" % (name, timeout))
        time.sleep(0.01)
    return time.monotonic() - start


class BenchFront:
    """The front dnsmasq in NS, driven as _host_lists.Front drives the unit: its PID, a SIGHUP, a restart."""

    def __init__(self, ns, procs, confs):
        self.ns, self.procs, self.confs, self.proc = ns, procs, confs, None

    def start(self):
        argv = ["dnsmasq", "-k", *("--conf-file=%s" % conf for conf in self.confs)]
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv])
        self.procs.append(self.proc)

    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def restart(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.start()


def main():
    ns = "srbench-" + uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="srbench-lists-"))
    tmp.chmod(0o755)
    procs = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        sh(ns, "ip", "link", "set", "lo", "up")
        sh(ns, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
        (tmp / "served").mkdir()
        names = ["d%d-bench.example" % i for i in range(N)]
        (tmp / "served" / "list.txt").write_text("# bench\n" + "\n".join(names) + "\n")
        procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "python3", str(SERVER), "--root",
                                       str(tmp / "served"), "--http", "8080", "--address6", ""]))  # fmt: skip
        # the upstream answers 198.51.100.1, the back (the tunnel's resolver) 198.51.100.2
        for name, conf in (
            ("up", [*COMMON, "listen-address=127.0.0.2", "port=53", "address=/#/198.51.100.1"]),
            ("back", [*COMMON, "listen-address=127.0.0.1", "port=5301", "address=/#/198.51.100.2"]),
        ):
            (tmp / ("%s.conf" % name)).write_text("\n".join(conf) + "\n")
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, "dnsmasq", "-k", "--conf-file=%s" % (tmp / ("%s.conf" % name))]
                )
            )
        servers_file, base_file = tmp / "front-servers.conf", tmp / "front-base.conf"
        servers_file.write_text("# empty\n")
        base_file.write_text("# empty\n")
        front_conf = tmp / "front.conf"
        front_conf.write_text("\n".join([*COMMON, "listen-address=127.0.0.1", "port=53", "server=127.0.0.2",
                                         "servers-file=%s" % servers_file]) + "\n")  # fmt: skip
        sets = "".join(
            "add set inet splitroute wg0_src%d { type ipv%d_addr; flags interval; }; " % (f, f) for f in (4, 6)
        )
        sh(ns, "nft", "add table inet splitroute; " + sets)
        time.sleep(0.02)  # the front starts after its base was written, as the unit does
        front = BenchFront(ns, procs, [front_conf, base_file])
        front.start()
        time.sleep(0.5)
        wait_answer(ns, names[-1], "198.51.100.1")
        rss_empty = rss_kib(front.pid())
        source = dict(_lists.SOURCE_DEFAULTS, id="wg0-bench", url="http://127.0.0.1:8080/list.txt", interval=60)
        plan = {
            "role": "client",
            "tunnels": [{"name": "wg0", "domains": [], "sources": [source], "has_v4": True, "has_v6": True}],
            "nft": {"table": _names.NFT_TABLE, "file": "-"},
            "paths": {"front_servers": str(servers_file), "front_base": str(base_file)},
            "lists": {"dir": str(tmp / "lists")},
            "front_groups": [{"name": "wg0", "domains": [], "back_server": "127.0.0.1#5301"}],
        }
        os.makedirs(plan["lists"]["dir"])
        # the program's functions run inside the namespace: this process enters it
        enter_netns(ns)
        log = [].append
        t0 = time.monotonic()
        assert _host_lists.refresh_source(plan["lists"]["dir"], source, time.time(), log) == "changed"
        t_fetch = time.monotonic()
        _merged, _conflicts, _text = _host_lists.compute(plan)
        t_compile = time.monotonic()
        first = _host_lists.apply(plan, front=front)["front"]
        t_write = time.monotonic()
        t_live = t_write + wait_answer(ns, names[-1], "198.51.100.2")
        rss_list = rss_kib(front.pid())
        # a 304: the next refresh of the unchanged list
        t1 = time.monotonic()
        assert _host_lists.refresh_source(plan["lists"]["dir"], source, time.time(), log) == "not-modified"
        t_304 = time.monotonic() - t1
        # an update: the served list with 1% of its domains replaced (the usual change of a published list)
        churn = max(1, N // 100)
        gone, added = names[:churn], ["n%d-bench.example" % i for i in range(churn)]
        (tmp / "served" / "list.txt").write_text("# bench\n" + "\n".join(names[churn:] + added) + "\n")
        pid = front.pid()
        t3 = time.monotonic()
        assert _host_lists.refresh_source(plan["lists"]["dir"], source, time.time() + 1, log) == "changed"
        update = _host_lists.apply(plan, front=front)["front"]
        t_update_write = time.monotonic()
        t_update = time.monotonic() + wait_answer(ns, added[-1], "198.51.100.2") - t3
        t_update_live = t3 + t_update - t_update_write
        if update != "reload" or front.pid() != pid:
            raise SystemExit("the update was applied by %s, not a SIGHUP" % update)
        if not answers(ns, gone[0], "198.51.100.1"):
            raise SystemExit("a domain removed from the list still resolves through the tunnel's back")
        # the baseline: the front started afresh with the same files
        t2 = time.monotonic()
        front.restart()
        cold = time.monotonic() - t2 + wait_answer(ns, added[-1], "198.51.100.2")
        total = t_live - t0
        print("A %d-domain list from URL to live (one run)" % N)
        print("  fetch + validate          %7.2f s" % (t_fetch - t0))
        print("  compile (merge, text)     %7.2f s" % (t_compile - t_fetch))
        print("  check + write + %-7s   %7.2f s" % (first, t_write - t_compile))
        print("  until answered            %7.2f s" % (t_live - t_write))
        print("  total                     %7.2f s  (target 10 s: %s)" % (total, "met" if total <= 10 else "MISSED"))
        print("  an update (%d of the domains replaced, %s): %.2f s, of which SIGHUP until answered %.2f s"
              % (churn, update, t_update, t_update_live))  # fmt: skip
        print("  a 304 (no compile)        %7.3f s  (%.1f%% of the full refresh)" % (t_304, 100 * t_304 / total))
        print("  baseline: cold start of the front with the list %.2f s; total / baseline %.2f" % (cold, total / cold))
        print("  front resolver memory: %d KiB without a list, %d KiB with it (+%d KiB, %.0f B a domain)"
              % (rss_empty, rss_list, rss_list - rss_empty, 1024.0 * (rss_list - rss_empty) / N))  # fmt: skip
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
