"""`splitroute wg-sync` (wg-quick@'s ExecReload in both roles' drop-ins): a peer added to a running
interface with no restart, against wireguard-go in two throwaway namespaces, with traffic across it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _wg_sync

STRIPPED = "[Interface]\nListenPort = 51820\n\n[Peer]\nPublicKey = P\nAllowedIPs = 10.9.0.2/32\n"
# a UDP echo in one namespace and a client in the other: the client prints how many of its packets came back
ECHO = """
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


def test_sync_text_adds_the_key_and_the_running_port_only_where_missing():
    got = _wg_sync.sync_text(STRIPPED, "K=", 40000)
    assert got.splitlines()[:3] == ["[Interface]", "PrivateKey = K=", "ListenPort = 51820"]
    assert got.count("ListenPort") == 1 and got.endswith("AllowedIPs = 10.9.0.2/32\n")
    client = _wg_sync.sync_text("[Interface]\n\n[Peer]\nPublicKey = P\n", "K=", 40000)
    assert client.splitlines()[:3] == ["[Interface]", "PrivateKey = K=", "ListenPort = 40000"]
    with pytest.raises(_host.HostError, match="PrivateKey"):
        _wg_sync.sync_text("[Interface]\nPrivateKey = X\n", "K=", None)
    with pytest.raises(_host.HostError, match="no \\[Interface\\]"):
        _wg_sync.sync_text("[Peer]\nPublicKey = P\n", "K=", None)


def wg(*args, ns, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, "wg", *args], capture_output=True, text=True, check=True, **kw)


@pytest.fixture
def pair(tmp_path):
    """A server (wgs0, port 51820) and a client (wgc0, no port given) in two namespaces, connected."""
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
        wg("set", siface, "private-key", str(tmp_path / "server.key"), "listen-port", "51820",
           "peer", keys["client"][1], "allowed-ips", "10.9.0.2/32", ns=server)  # fmt: skip
        wg("set", ciface, "private-key", str(tmp_path / "client.key"), "peer", keys["server"][1],
           "allowed-ips", "0.0.0.0/0", "endpoint", "192.0.2.1:51820", ns=client)  # fmt: skip
        for ns, iface, addr in ((server, siface, "10.9.0.1/24"), (client, ciface, "10.9.0.2/24")):
            ip("-n", ns, "addr", "add", addr, "dev", iface)
            ip("-n", ns, "link", "set", iface, "up")
        procs.append(subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", ECHO, "server"]))
        time.sleep(0.3)
        yield {
            "server": server,
            "client": client,
            "keys": keys,
            "dir": tmp_path,
            "wgs0": siface,
            "wgc0": ciface,
        }
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        # wireguard-go exits when its interface goes
        for ns, iface in ((server, siface), (client, ciface)):
            subprocess.run(["ip", "-n", ns, "link", "del", iface], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", ns], check=False)


def echoes(pair, count):
    out = subprocess.run(["ip", "netns", "exec", pair["client"], sys.executable, "-c", ECHO, "client", str(count)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout)


def session(pair, ns, iface):
    """The interface's key and port and each peer's latest handshake."""
    shown = {what: wg("show", iface, what, ns=pair[ns]).stdout for what in ("public-key", "listen-port")}
    handshakes = wg("show", iface, "latest-handshakes", ns=pair[ns]).stdout.splitlines()
    return shown, dict(line.split() for line in handshakes)


def test_a_peer_added_by_wg_sync_leaves_the_running_sessions_alone(pair):
    assert echoes(pair, 5) == 5
    keys = pair["keys"]
    conf = pair["dir"] / ("%s.conf" % pair["wgs0"])
    conf.write_text(
        "[Interface]\nAddress = 10.9.0.1/24\nListenPort = 51820\nTable = off\n"
        "PostUp = wg set %%i private-key %s\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 10.9.0.2/32\n\n"
        "[Peer]\nPublicKey = %s\nAllowedIPs = 10.9.0.20/32\n"
        % (pair["dir"] / "server.key", keys["client"][1], keys["other"][1])
    )
    before = session(pair, "server", pair["wgs0"])
    # the client side too: its configuration has no ListenPort, its running port stays
    client_conf = pair["dir"] / ("%s.conf" % pair["wgc0"])
    client_conf.write_text("[Interface]\nAddress = 10.9.0.2/24\n\n[Peer]\nPublicKey = %s\nAllowedIPs = 0.0.0.0/0\n"
                           "Endpoint = 192.0.2.1:51820\nPersistentKeepalive = 15\n" % keys["server"][1])  # fmt: skip
    client_before = session(pair, "client", pair["wgc0"])
    code = (
        "import sys; sys.path[:0] = %r; from ansible_collections.splitroute.vpn.plugins.module_utils import _wg_sync; "
        "_wg_sync.sync(*sys.argv[1:2], print, *sys.argv[2:])" % sys.path
    )
    for ns, iface, path, key in (("server", "wgs0", conf, "server.key"), ("client", "wgc0", client_conf, "client.key")):
        out = subprocess.run(["ip", "netns", "exec", pair[ns], sys.executable, "-c", code, pair[iface], str(path),
                              str(pair["dir"] / key)], capture_output=True, text=True, check=True)  # fmt: skip
        assert "wg syncconf" in out.stdout and pair["keys"][ns][0] not in out.stdout + out.stderr
    after = session(pair, "server", pair["wgs0"])
    assert after[0] == before[0] and after[1][keys["client"][1]] == before[1][keys["client"][1]] != "0"
    assert after[1][keys["other"][1]] == "0"
    assert session(pair, "client", pair["wgc0"]) == client_before
    assert keys["other"][1] in wg("show", pair["wgs0"], "peers", ns=pair["server"]).stdout.split()
    assert "15" in wg("show", pair["wgc0"], "persistent-keepalive", ns=pair["client"]).stdout
    # every packet still comes back: the key and the port are the ones the sessions use
    assert echoes(pair, 20) == 20


def test_wg_sync_refuses_an_interface_the_role_does_not_have():
    run = _wg_sync.command(lambda plan: ["wg0"])
    args = type("Args", (), {"interface": "eth0"})()
    with pytest.raises(_host.HostError, match="not a WireGuard interface"):
        run({}, args, print)
