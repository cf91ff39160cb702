"""`splitroute wg-sync` (wg-quick@'s ExecReload in both roles' drop-ins): a peer added to a running
interface with no restart, against wireguard-go in two throwaway namespaces (conftest's wg_pair), with
traffic across it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.splitroute.vpn.plugins.module_utils import _host, _wg_sync

STRIPPED = "[Interface]\nListenPort = 51820\n\n[Peer]\nPublicKey = P\nAllowedIPs = 10.9.0.2/32\n"


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


def wg(*args, ns):
    return subprocess.run(["ip", "netns", "exec", ns, "wg", *args], capture_output=True, text=True, check=True)


def session(pair, ns, iface):
    """The interface's key and port and each peer's latest handshake."""
    shown = {what: wg("show", iface, what, ns=pair[ns]).stdout for what in ("public-key", "listen-port")}
    handshakes = wg("show", iface, "latest-handshakes", ns=pair[ns]).stdout.splitlines()
    return shown, dict(line.split() for line in handshakes)


def test_a_peer_added_by_wg_sync_leaves_the_running_sessions_alone(wg_pair):
    pair = wg_pair
    assert pair["echoes"](5) == 5
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
    assert pair["echoes"](20) == 20


def test_wg_sync_refuses_an_interface_the_role_does_not_have():
    run = _wg_sync.command(lambda plan: ["wg0"])
    args = type("Args", (), {"interface": "eth0"})()
    with pytest.raises(_host.HostError, match="not a WireGuard interface"):
        run({}, args, print)
