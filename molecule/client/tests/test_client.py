"""The split-tunnel client in the lab, proven with packets.

The client (site A, behind router-a) tunnels example.com, the static network
198.51.100.213/32 and everything user tunneluser sends through wg0 to the lab's
WireGuard endpoint. The echo service answers with the address a request came
from: the endpoint's egress for tunneled requests, router-a's for direct ones.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import changed_tasks as lab_changed_tasks
from conftest import failures, parse_packets, run_playbook

ROOT = Path(__file__).resolve().parents[3]
CONVERGE = ROOT / "molecule" / "client" / "converge.yml"
CLIENT = "client"
ROUTER = "router-a"


@pytest.fixture(scope="module")
def exits(lab):
    return {
        "tunnel": lab.hostvars["vpn-endpoint"]["lab_exit"],
        "direct": lab.hostvars[ROUTER]["lab_exit"],
    }


def echo(lab, name, family, user=None, max_time=5):
    """The address the echo service saw for a request to NAME, or None when it timed out."""
    cmd = "curl -%d --silent --max-time %d http://%s/" % (family, max_time, name)
    if user:
        cmd = "runuser -u %s -- %s" % (user, cmd)
    result = lab.host(CLIENT).run(cmd)
    return result.stdout.strip() if result.rc == 0 else None


def playbook(*extra, check=False):
    return run_playbook(CONVERGE, *extra, check=check)


def changed_tasks(out, host=CLIENT):
    return lab_changed_tasks(out, host)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("name", ["example.com", "www.example.com"])
def test_listed_domain_takes_the_tunnel(lab, exits, name, family):
    assert echo(lab, name, family) == exits["tunnel"]["ipv%d" % family]


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("name", ["www.example.net", "www.example.org"])
def test_unlisted_domain_goes_direct(lab, exits, name, family):
    assert echo(lab, name, family) == exits["direct"]["ipv%d" % family]


def test_dns_for_a_listed_domain_never_crosses_the_uplink(lab):
    packets = []
    with lab.capture(ROUTER, "wan", packets):
        # fresh names, so neither resolver answers from its cache (short.example.com has a
        # 5 s TTL; its address is also in the static network, so nothing new is tunneled)
        lab.host(CLIENT).check_output("dig +short short.example.com A short.example.com AAAA")
        lab.host(CLIENT).check_output("dig +short cdn.example.net A")
    dns = [p for p in parse_packets(packets) if 53 in (p.sport, p.dport)]
    assert any("cdn.example.net" in p.info for p in dns), "the control query did not cross the uplink"
    assert not [p for p in dns if "example.com" in p.info]
    # the listed query went through the tunnel: only WireGuard to the endpoint
    assert any(p.dport == 51820 for p in parse_packets(packets))


def test_stray_dns_is_answered_by_the_local_resolver(lab):
    client = lab.host(CLIENT)
    answer = client.check_output("dig +short +time=2 +tries=1 @198.51.100.99 www.example.com A")
    assert answer.split() == [lab.hostvars["inet"]["lab_zones"]["example.com"][1]["a"]]
    # and the answer filled the tunnel's set like any other
    assert "198.51.100.210" in client.check_output("nft -j list set inet splitroute wg0_v4")


def test_static_network_takes_the_tunnel(lab, exits):
    assert echo(lab, "198.51.100.213", 4) == exits["tunnel"]["ipv4"]


def test_a_listed_user_takes_the_tunnel_and_others_do_not(lab, exits):
    assert echo(lab, "www.example.net", 4, user="tunneluser") == exits["tunnel"]["ipv4"]
    assert echo(lab, "www.example.net", 4, user="otheruser") == exits["direct"]["ipv4"]


def test_tunnel_down_fails_closed(lab, exits):
    client = lab.host(CLIENT)
    client.check_output("systemctl stop wg-quick@wg0.service")
    try:
        packets = []
        with lab.capture(ROUTER, "wan", packets):
            assert echo(lab, "www.example.com", 4, max_time=3) is None
            assert echo(lab, "www.example.com", 6, max_time=3) is None
            # unlisted traffic is unaffected
            assert echo(lab, "www.example.net", 4) == exits["direct"]["ipv4"]
        leaked = [p for p in parse_packets(packets) if p.dst in ("198.51.100.210", "2001:db8:100::10")]
        assert not leaked, leaked
    finally:
        client.check_output("systemctl start wg-quick@wg0.service")
    for _attempt in range(20):
        if echo(lab, "www.example.com", 4) == exits["tunnel"]["ipv4"]:
            break
        time.sleep(0.5)
    assert echo(lab, "www.example.com", 4) == exits["tunnel"]["ipv4"]
    assert echo(lab, "www.example.com", 6) == exits["tunnel"]["ipv6"]


def test_check_mode_on_the_converged_host_reports_no_change():
    rc, out = playbook(check=True)
    assert rc == 0, failures(out)
    assert changed_tasks(out) == []


def test_a_connection_survives_a_domain_change_and_a_reload(lab, exits):
    """Open a connection through the tunnel, change the domain list and reload, then use it."""
    client = lab.host(CLIENT)
    front_pid = client.check_output("systemctl show -p MainPID --value splitroute-dns-front.service")
    script = (
        "import os,socket,time\n"
        "s=socket.create_connection(('www.example.com',80),timeout=30)\n"
        "open('/root/ll.ready','w').close()\n"
        "while not os.path.exists('/root/ll.go'): time.sleep(0.1)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\nHost: www.example.com\\r\\n\\r\\n')\n"
        "data=b''\n"
        "while True:\n"
        "    chunk=s.recv(4096)\n"
        "    if not chunk: break\n"
        "    data+=chunk\n"
        "open('/root/ll.out','w').write(data.decode().split('\\r\\n\\r\\n',1)[1].strip())\n"
    )
    client.check_output("rm -f /root/ll.ready /root/ll.go /root/ll.out")
    client.check_output("cat > /root/longlived.py <<'EOF'\n%s\nEOF" % script)
    client.check_output("systemd-run --quiet --collect --unit=srtest-longlived python3 /root/longlived.py")
    for _attempt in range(50):
        if client.run("test -e /root/ll.ready").rc == 0:
            break
        time.sleep(0.1)
    # while the connection is open: a new domain in inventory, applied by the role (SIGHUP),
    # and one more reload of the front resolver
    try:
        added_then_removed(lab, client, exits, front_pid)
    finally:
        playbook()  # back to the scenario's list, whatever happened


def added_then_removed(lab, client, exits, front_pid):
    rc, out = playbook({"splitroute_client_domains__added": {"wg0": ["example.org"]}})
    assert rc == 0, failures(out)
    client.check_output("systemctl reload splitroute-dns-front.service")
    client.check_output("touch /root/ll.go")
    for _attempt in range(50):
        if client.run("test -s /root/ll.out").rc == 0:
            break
        time.sleep(0.1)
    assert client.check_output("cat /root/ll.out") == exits["tunnel"]["ipv4"]
    # the domain took effect without a restart of the front resolver
    assert client.check_output("systemctl show -p MainPID --value splitroute-dns-front.service") == front_pid
    assert echo(lab, "www.example.org", 4) == exits["tunnel"]["ipv4"]
    # back to the scenario's list: lookups of example.org no longer go through the back
    # resolver, so its address is not refreshed in the set and expires within the timeout
    rc, out = playbook()
    assert rc == 0, failures(out)
    first = set_expiry(client, "198.51.100.212")
    time.sleep(2)
    client.check_output("dig +short www.example.org A")
    assert set_expiry(client, "198.51.100.212") < first
    # once it has expired (flushed here rather than waited for), new connections go direct
    client.check_output("nft flush set inet splitroute wg0_v4 && nft flush set inet splitroute wg0_v6")
    assert echo(lab, "www.example.org", 4) == exits["direct"]["ipv4"]


def set_expiry(client, address):
    data = json.loads(client.check_output("nft -j list set inet splitroute wg0_v4"))
    for item in data["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            if isinstance(elem, dict) and elem["elem"]["val"] == address:
                return elem["elem"]["expires"]
    pytest.fail("%s is not in the set" % address)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"splitroute_client_domains__bad": {"wg0": ["evil.com\nserver=/#/1.1.1.1"]}}, "evil.com"),
        ({"splitroute_client_domains__bad": {"wg0": ["a/b.example"]}}, "a/b.example"),
        ({"splitroute_client_upstream_dns": ["2001:db8::1", "not-an-ip"]}, "not-an-ip"),
        ({"splitroute_client_set_timeout": 300}, "must exceed"),
    ],
)
def test_bad_input_fails_before_any_change(lab, extra, message):
    client = lab.host(CLIENT)
    before = client.check_output("md5sum /etc/splitroute/dns/front-servers.conf /etc/splitroute/client.nft")
    rc, out = playbook(extra)
    assert rc != 0
    assert any(message in msg for msg in failures(out)), failures(out)
    assert changed_tasks(out) == []
    assert client.check_output("md5sum /etc/splitroute/dns/front-servers.conf /etc/splitroute/client.nft") == before


def test_an_ipv6_address_where_ipv4_is_expected_is_refused(lab):
    tunnels = [
        {
            "name": "wg0",
            "address": ["fd10:99::10/128"],
            "dns": ["10.99.0.1"],
            "peer": {"public_key": "A" * 43 + "=", "endpoint": "2001:db8:113::20:51820"},
        }
    ]
    client = lab.host(CLIENT)
    before = client.check_output("md5sum /etc/wireguard/wg0.conf")
    rc, out = playbook({"splitroute_client_tunnels": tunnels})
    assert rc != 0
    text = " ".join(failures(out))
    assert "IPv4 networks or dns need an IPv4 tunnel address" in text
    assert "peer.endpoint" in text
    assert client.check_output("md5sum /etc/wireguard/wg0.conf") == before


def test_after_a_restart_listed_domains_are_tunneled_with_no_ansible_run(lab, exits):
    packets = []
    with lab.capture(ROUTER, "wan", packets):
        subprocess.run(["podman", "restart", "--time", "5", lab.hostvars[CLIENT]["ansible_host"]], check=True)
        client = lab.host(CLIENT)
        for _attempt in range(60):
            state = client.run("systemctl is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        for _attempt in range(40):
            if echo(lab, "www.example.com", 4, max_time=2) == exits["tunnel"]["ipv4"]:
                break
            time.sleep(0.5)
    assert echo(lab, "www.example.com", 4) == exits["tunnel"]["ipv4"]
    assert echo(lab, "www.example.com", 6) == exits["tunnel"]["ipv6"]
    assert client.run("journalctl -b | grep -i 'ordering cycle'").rc != 0
    leaked = [p for p in parse_packets(packets) if p.dst in ("198.51.100.210", "2001:db8:100::10")]
    assert not leaked, leaked


def test_state_absent_removes_everything_and_restores_resolv_conf(lab, exits):
    """Last: the role undoes itself (the scenario's destroy follows)."""
    client = lab.host(CLIENT)
    original = client.check_output("cat /etc/splitroute/resolv.conf.orig")
    rc, out = playbook({"splitroute_client_state": "absent"})
    assert rc == 0, failures(out)
    assert client.check_output("cat /etc/resolv.conf") == original
    assert client.run("nft list table inet splitroute").rc != 0
    assert "lookup 100" not in client.check_output("ip rule; ip -6 rule")
    assert client.check_output("ip route show table 100; ip -6 route show table 100") == ""
    assert client.run("ip link show wg0").rc != 0
    units = client.check_output("systemctl list-units --all --plain --no-legend 'splitroute*' 'wg-quick@*'")
    assert units == ""
    for path in (
        "/etc/splitroute",
        "/etc/wireguard/wg0.conf",
        "/etc/wireguard/wg0.key",
        "/usr/local/sbin/splitroute-client-routing",
    ):
        assert not client.file(path).exists, path
    # the host resolves and reaches everything directly again
    assert echo(lab, "www.example.com", 4) == exits["direct"]["ipv4"]
    rc, out = playbook({"splitroute_client_state": "absent"})
    assert rc == 0 and changed_tasks(out) == [], changed_tasks(out)
