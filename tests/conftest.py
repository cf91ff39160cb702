"""Shared fixtures: throwaway network namespaces and a module runner.

Modules run as Ansible runs them on a host: a separate Python process that
reads its arguments from a JSON file and prints its result as JSON. No mocks:
every module acts on the real kernel, inside a namespace the fixture creates
and removes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import ansible
import pytest

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".cache" / "collections"


def pytest_configure(config):
    if os.geteuid() != 0:
        pytest.exit("these suites act on the real kernel and need root", returncode=2)
    if not (COLLECTIONS / "ansible_collections" / "splitroute" / "vpn").exists():
        pytest.exit("run `make deps` first (it links the collection under .cache/collections)", returncode=2)


class ModuleFailed(AssertionError):
    pass


def ansible_only_path():
    """A directory holding only a link to the venv's ansible package."""
    path = ROOT / ".cache" / "ansible-only"
    link = path / "ansible"
    if not link.exists():
        path.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(ansible.__file__).parent)
    return path


SYSTEM_PYTHON = "/usr/bin/python3"


def run_module(name, args, check=False, diff=True, python=None, expect_fail=False):
    """Run module splitroute.vpn.NAME with ARGS; return its result dict."""
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
        path = fh.name
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    if python and python != sys.executable:
        # Another interpreter (Debian's /usr/bin/python3 with pyroute2 0.7, as on a managed host):
        # give it ansible-core's module_utils and nothing else from the venv.
        env["PYTHONPATH"] = "%s:%s" % (ansible_only_path(), COLLECTIONS)
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "ansible_collections.splitroute.vpn.plugins.modules.%s" % name, path],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    finally:
        os.unlink(path)
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise ModuleFailed(
            "module %s printed no JSON (rc=%s):\n%s\n%s" % (name, proc.returncode, proc.stdout, proc.stderr)
        ) from exc
    if expect_fail:
        if not result.get("failed"):
            raise ModuleFailed("module %s was expected to fail but returned %r" % (name, result))
    elif result.get("failed"):
        raise ModuleFailed("module %s failed: %s" % (name, result.get("msg")))
    return result


def run_four(name, args, python=None):
    """The house pattern: check (changed), real (changed), check (unchanged), real (unchanged).

    Returns the result of the first real run.
    """
    first_check = run_module(name, args, check=True, python=python)
    assert first_check["changed"] is True, first_check
    real = run_module(name, args, python=python)
    assert real["changed"] is True, real
    second_check = run_module(name, args, check=True, python=python)
    assert second_check["changed"] is False, second_check
    second_real = run_module(name, args, python=python)
    assert second_real["changed"] is False, second_real
    return real


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def netns():
    """A fresh, empty network namespace (loopback up); removed afterwards."""
    name = "srt-" + uuid.uuid4().hex[:10]
    _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")
    yield name
    _ip("netns", "del", name, check=False)
    shutil.rmtree("/etc/netns/%s" % name, ignore_errors=True)


@pytest.fixture
def nsexec(netns):
    """Run a command inside the fixture's namespace; returns CompletedProcess."""

    def _run(*cmd, check=True, **kw):
        return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True, text=True, check=check, **kw)

    return _run


@pytest.fixture
def module():
    return run_module


@pytest.fixture
def four():
    return run_four


# ---------------------------------------------------------------- a WireGuard pair (wireguard-go)

# a UDP echo in one namespace and a client in the other: the client prints how many of its packets came back
WG_ECHO = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[1] == "server":
    s.bind(("10.9.0.1", 9999))
    while True:
        data, peer = s.recvfrom(64)
        s.sendto(data, peer)
s.settimeout(0.5)
back = 0
for i in range(int(sys.argv[2])):
    s.sendto(b"%d" % i, ("10.9.0.1", 9999))
    try:
        s.recvfrom(64)
        back += 1
    except socket.timeout:
        pass
    time.sleep(0.05)
print(back)
"""


def _wg(*args, ns, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, "wg", *args], capture_output=True, text=True, check=True, **kw)


@pytest.fixture
def wg_pair(tmp_path):
    """A server (wgs0, port 51820, 192.0.2.1 on its veth) and a client (wgc0, no port given, endpoint
    192.0.2.1:51820) in two namespaces, connected: 10.9.0.1 and 10.9.0.2 across the tunnel, a UDP echo
    on the server's side (echoes(count))."""
    tag = uuid.uuid4().hex[:6]
    server, client = "srws-" + tag, "srwc-" + tag
    # wireguard-go's control sockets are host-wide (/run/wireguard/NAME.sock): names of this test only
    siface, ciface = "srs" + tag, "src" + tag
    keys = {}
    for name in ("server", "client", "other"):
        private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True)
        keys[name] = (private, public.stdout.strip())
        (tmp_path / ("%s.key" % name)).write_text(private + "\n")

    def ip(*args):
        return subprocess.run(["ip", *args], capture_output=True, text=True, check=True)

    ip("netns", "add", server)
    ip("netns", "add", client)
    procs = []
    try:
        ip("link", "add", "vs", "netns", server, "type", "veth", "peer", "name", "vc", "netns", client)
        for ns, dev, addr in ((server, "vs", "192.0.2.1/24"), (client, "vc", "192.0.2.2/24")):
            ip("-n", ns, "addr", "add", addr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        for ns, iface in ((server, siface), (client, ciface)):
            ip("netns", "exec", ns, "wireguard-go", iface)
        _wg("set", siface, "private-key", str(tmp_path / "server.key"), "listen-port", "51820",
            "peer", keys["client"][1], "allowed-ips", "10.9.0.2/32", ns=server)  # fmt: skip
        _wg("set", ciface, "private-key", str(tmp_path / "client.key"), "peer", keys["server"][1],
            "allowed-ips", "0.0.0.0/0", "endpoint", "192.0.2.1:51820", ns=client)  # fmt: skip
        for ns, iface, addr in ((server, siface, "10.9.0.1/24"), (client, ciface, "10.9.0.2/24")):
            ip("-n", ns, "addr", "add", addr, "dev", iface)
            ip("-n", ns, "link", "set", iface, "up")
        procs.append(subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", WG_ECHO, "server"]))
        time.sleep(0.3)

        def echoes(count):
            """How many of COUNT UDP packets from the client came back through the tunnel."""
            out = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c", WG_ECHO, "client", str(count)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            return int(out.stdout)

        yield {
            "server": server,
            "client": client,
            "keys": keys,
            "dir": tmp_path,
            "wgs0": siface,
            "wgc0": ciface,
            "echoes": echoes,
        }
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        # wireguard-go exits when its interface goes
        for ns, iface in ((server, siface), (client, ciface)):
            subprocess.run(["ip", "-n", ns, "link", "del", iface], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", ns], check=False)
