"""The client role's templates, rendered from plans the filter accepted: no value adds a line.

Belt and braces behind the plan's checks: every `{{ ... }}` of every template goes through a finalize hook
that fails on a line break or any other control character in the value. The plans come from valid input
with every field used (two tunnels, IPv6, users, ports, networks, a preshared key, keepalive); the rendered
nftables file must also pass `nft -c`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment

from ansible_collections.splitroute.vpn.plugins.filter.client_plan import (
    client_dnsmasq_text,
    client_host_plan,
    client_plan,
    client_secrets,
    client_settings,
)
from ansible_collections.splitroute.vpn.plugins.module_utils import _names

ROLE = Path(__file__).resolve().parents[4] / "roles" / "client"
KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
PSK = "BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
TUNNELS = [
    {
        "name": "wg0",
        "address": ["10.99.0.10/32", "fd10:99::10/128"],
        "private_key": KEY,
        "peer": {
            "public_key": KEY,
            "endpoint": "[2001:db8::20]:51820",
            "preshared_key": PSK,
            "allowed_ips": ["0.0.0.0/0", "::/0"],
            "persistent_keepalive": 25,
        },
        "dns": ["10.99.0.1", "fd10:99::1"],
        "domains": ["example.com"],
        "networks": ["203.0.113.0/24", "2001:db8:113::/48"],
        "users": ["nobody", 1001],
        "ports": [{"proto": "tcp", "port": "8000-8080"}, {"proto": "udp", "port": 5060}],
        "fallback": ["wg-1.x"],
        "health": {"targets": ["198.51.100.1", "2001:db8:100::1"], "method": "http", "path": "/health?x=1"},
    },
    {
        "name": "wg-1.x",
        "address": ["10.97.0.10/32"],
        "peer": {"public_key": KEY, "endpoint": "vpn.example.org:51821"},
        "dns": ["10.97.0.1"],
        "domains": ["example.net"],
    },
]
SETTINGS = {
    "state": "present",
    "set_timeout": "3600",  # as -e gives it
    "max_cache_ttl": 300,
    "max_ttl": 300,
    "cache_size": 10000,
    "table_base": 100,
    "priority_base": 1000,
    "back_port": 5301,
    "upstream_dns": ["192.0.2.53", "2001:db8::53"],
    "wireguard_userspace": "wireguard-go",
    "dns_redirect": "true",
    "tailscale": True,
    # every part on: the nftables file (nft -c) and the resolvers (dnsmasq --test) with all of it
    "dns_bypass": {"dot": True, "dot_allow": ["192.0.2.85"], "doh": True, "doh_addresses": ["198.51.100.230"],
                   "canaries": True, "private_relay": True, "https_records": True, "quic": True},
    # forwarded traffic with every part: interfaces and a prefix, sources, each kind of policy
    "forward": {"interfaces": ["lan0", "docker*"], "sources": ["192.168.50.0/24", "fd50::/64"],
                "policies": [{"source": "192.168.1.50", "tunnel": "wg0"}, {"source": "fd50::50", "tunnel": "wg-1.x"},
                             {"source": "02:00:00:00:00:aa", "tunnel": "wg0"},
                             {"source": "192.168.1.9", "exclude": True},
                             {"source": "02:00:00:00:00:09", "exclude": True}]},
    "fwmark_mask": "0xff00ff",
}  # fmt: skip


class AddedLine(AssertionError):
    pass


def guard(value):
    text = "" if value is None else str(value)
    bad = [c for c in text if ord(c) < 32 or ord(c) == 127]
    if bad:
        raise AddedLine("a value would add to or break a line: %r" % text)
    return text


def environment(guarded=True):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
        finalize=guard if guarded else None,
    )
    # the header is the one multi-line value, and it is ours: one line here
    env.filters["comment"] = lambda text: comment(text).replace("\n", " ")
    return env


def context(plan, settings, resolved=False, **extra):
    names = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    names = {k: v for k, v in names.items() if not (isinstance(v, (str, dict)) and "{{" in str(v))}
    host = client_host_plan(plan, settings, resolved=resolved)
    # vars/main.yml takes these from the plan
    names.update(
        __splitroute_client_etc=host["paths"]["etc"],
        __splitroute_client_dns_dir=host["paths"]["dns_dir"],
        __splitroute_client_nft_file=host["nft"]["file"],
        __splitroute_client_nft_table=host["nft"]["table"],
        __splitroute_client_dns=host["dns"],
    )
    return dict(
        names,
        __splitroute_client_host=host,
        ansible_managed="Ansible managed",
        __splitroute_client_plan=plan,
        __splitroute_client_settings=settings,
        __splitroute_client_upstreams=settings["upstream_dns"],
        __splitroute_client_secrets=client_secrets(TUNNELS),
        **extra,
    )


def renderings(resolved=False, upstream_dns=None, **more):
    """Every template rendered: RESOLVED, as on a host where systemd-resolved runs; UPSTREAM_DNS
    instead of SETTINGS' (a list; None: SETTINGS'); MORE: other settings."""
    given = dict(SETTINGS, upstream_dns=SETTINGS["upstream_dns"] if upstream_dns is None else upstream_dns, **more)
    plan = client_plan(TUNNELS, given)
    settings = client_settings(given)
    env = environment()
    out = {}
    for name in (
        ("client.nft.j2", "dnsmasq-front.conf.j2")
        + tuple(p.name for p in (ROLE / "templates").glob("*.service.j2"))
        + tuple(p.name for p in (ROLE / "templates").glob("*.timer.j2"))
    ):
        out[name] = env.get_template(name).render(context(plan, settings, resolved))
    for item in plan:
        for name in ("wg.conf.j2", "dnsmasq-back.conf.j2", "wg-quick-dropin.conf.j2"):
            out["%s[%s]" % (name, item["name"])] = env.get_template(name).render(
                context(plan, settings, resolved, item=item)
            )
    for name in ("networkd.conf.j2", "resolved.conf.j2"):
        out[name] = env.get_template(name).render(context(plan, settings, resolved))
    # the multi-line values the collection's own filters make (JSON, the nftset/server lists)
    raw = environment(guarded=False)
    raw.filters["to_nice_json"] = lambda value, **kw: json.dumps(value, indent=4, **kw)
    raw.filters["splitroute.vpn.client_dnsmasq_text"] = client_dnsmasq_text
    out["client.json.j2"] = raw.get_template("client.json.j2").render(context(plan, settings, resolved))
    for item in plan:
        name = "dnsmasq-back-nftset.conf.j2"
        out["%s[%s]" % (name, item["name"])] = raw.get_template(name).render(
            context(plan, settings, resolved, item=item)
        )
    return out


def test_every_file_of_the_plans_trees_has_its_template_and_the_generated_ones_hold_what_the_filters_make():
    plan = client_plan(TUNNELS, SETTINGS)
    host = client_host_plan(plan, client_settings(SETTINGS))
    templates = {p.name for p in (ROLE / "templates").glob("*.j2")}
    names = [f["name"] for tree in host["trees"].values() for f in tree["files"]]
    assert len(names) == len(set(names))
    for tree in host["trees"].values():
        for entry in tree["files"]:
            assert entry["template"] in templates, entry
            assert entry.get("tunnel") in (None, *[t["name"] for t in plan])
    out = renderings()
    assert json.loads(out["client.json.j2"]) == json.loads(json.dumps(host))
    # the servers-file is the host program's (splitroute apply), from the plan's front groups
    assert _names.CLIENT_FRONT_SERVERS not in [
        tree["root"] + "/" + f["name"] for tree in host["trees"].values() for f in tree["files"]
    ]
    assert "server=/" in client_dnsmasq_text(host["front_groups"], "front")
    assert "nftset=/#/" in out["dnsmasq-back-nftset.conf.j2[wg0]"]


def test_every_template_renders_with_no_value_adding_a_line():
    out = renderings()
    assert set(n.split("[")[0] for n in out) == {p.name for p in (ROLE / "templates").glob("*.j2")}
    wg0 = out["wg.conf.j2[wg0]"]
    assert "PresharedKey = %s\n" % PSK in wg0 and "Address = 10.99.0.10/32, fd10:99::10/128\n" in wg0
    assert "Endpoint = [2001:db8::20]:51820\n" in wg0
    assert "server=2001:db8::53\n" in out["dnsmasq-front.conf.j2"]
    assert "redirect to :53" in out["client.nft.j2"] and "100.100.100.100" in out["client.nft.j2"]


def interface_lines(conf):
    """The [Interface] section's lines of a wg-quick configuration."""
    section = conf.split("[Interface]\n", 1)[1].split("\n[", 1)[0]
    return [line for line in section.splitlines() if line and not line.startswith("#")]


def repeated_lines(dropin):
    return [line[len("#   ") :] for line in dropin.splitlines() if line.startswith("#   ")]


def test_each_tunnels_dropin_repeats_its_interface_so_only_a_change_of_it_restarts_the_tunnel():
    out = renderings()
    for name in ("wg0", "wg-1.x"):
        lines = interface_lines(out["wg.conf.j2[%s]" % name])
        assert lines[0].startswith("Address = ") and "Table = off" in lines
        assert repeated_lines(out["wg-quick-dropin.conf.j2[%s]" % name]) == lines


def directives(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_local_dns_where_resolved_runs_and_where_it_does_not():
    """Where resolved runs its stub keeps 127.0.0.53 and sends every name to the front (~. and each listed
    domain as routing domains), the front reads resolved's uplink resolvers live, and the redirect leaves
    resolved's own queries alone; where it does not, the front answers on 127.0.0.53 and resolved's stub
    stays off should it start. Both send resolved to the front."""
    plain = renderings(upstream_dns=[])
    front = directives(plain["dnsmasq-front.conf.j2"])
    assert "listen-address=127.0.0.1,::1,127.0.0.53" in front
    assert "no-resolv" in front and "no-poll" in front and not any(d.startswith("resolv-file") for d in front)
    assert "skuid systemd-resolve" not in plain["client.nft.j2"]
    dropin = directives(plain["resolved.conf.j2"])
    assert dropin == ["[Resolve]", "DNS=127.0.0.1", "Domains=~.", "Domains=~example.com", "Domains=~example.net",
                      "DNSStubListener=no"]  # fmt: skip

    live = renderings(resolved=True, upstream_dns=[])
    front = directives(live["dnsmasq-front.conf.j2"])
    assert "listen-address=127.0.0.1,::1" in front
    assert "resolv-file=/run/systemd/resolve/resolv.conf" in front
    assert "no-resolv" not in front and "no-poll" not in front  # both would stop it re-reading the file
    assert not any(d.startswith("server=") and "/" not in d for d in front)  # no frozen upstreams
    assert "meta skuid systemd-resolve return" in live["client.nft.j2"]
    assert directives(live["resolved.conf.j2"]) == dropin[:-1]

    # upstreams given: the front uses them, resolved or not
    given = directives(renderings(resolved=True)["dnsmasq-front.conf.j2"])
    assert "server=192.0.2.53" in given and "no-resolv" in given
    assert not any(d.startswith("resolv-file") for d in given)


def test_a_tunnel_without_ipv6_has_its_aaaa_answers_filtered():
    """wg-1.x has an IPv4 address only: its back resolver drops AAAA answers; wg0 (dual stack) keeps both."""
    out = renderings()
    assert "\nfilter-AAAA\n" in out["dnsmasq-back.conf.j2[wg-1.x]"]
    for name in ("dnsmasq-back.conf.j2[wg0]", "dnsmasq-back.conf.j2[wg-1.x]"):
        assert "\nfilter-A\n" not in out[name], name
    assert "filter-AAAA" not in out["dnsmasq-back.conf.j2[wg0]"]
    # and its answers fill its IPv4 sets only (dnsmasq fills the sets before it filters)
    assert "4#inet#" in out["dnsmasq-back-nftset.conf.j2[wg-1.x]"]
    assert "6#inet#" not in out["dnsmasq-back-nftset.conf.j2[wg-1.x]"]
    assert "6#inet#" in out["dnsmasq-back-nftset.conf.j2[wg0]"]


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="needs dnsmasq")
def test_the_rendered_back_resolvers_pass_dnsmasq_test(tmp_path):
    for name, text in renderings().items():
        if not name.startswith("dnsmasq-back.conf.j2"):
            continue
        path = tmp_path / "back.conf"
        path.write_text(text)
        command = ["dnsmasq", "--test", "--conf-file=%s" % path]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (name, proc.stderr)


def test_the_guard_catches_a_value_with_a_line_break():
    """The check above is not vacuous: a plan holding an injected line is caught at rendering."""
    settings = dict(SETTINGS, forward={})  # (its policies name the other tunnel)
    (plan,) = client_plan([dict(TUNNELS[0], fallback=[])], settings)
    plan = dict(plan, address=["fd00::2%x\nPreUp = touch /tmp/ran #"])
    with pytest.raises(AddedLine):
        environment().get_template("wg.conf.j2").render(context([plan], client_settings(settings), item=plan))


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft")
def test_the_rendered_nftables_file_passes_nft_check(tmp_path):
    path = tmp_path / "client.nft"
    path.write_text(renderings()["client.nft.j2"])
    proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_tunnel_with_a_fallback_leaves_its_default_route_and_its_servers_to_splitroute_health():
    """wg0 falls back to wg-1.x: wg-quick adds no default route to wg0's table (splitroute health owns it, and
    the probe routes: a fallback does not change the exits' configurations), the probes keep their marks, and
    wg0's back resolver reads its servers from the servers-file splitroute health writes."""
    out = renderings()
    wg0, wg1 = out["wg.conf.j2[wg0]"], out["wg.conf.j2[wg-1.x]"]
    assert "route replace" not in wg0
    assert [line for line in wg1.splitlines() if "route replace" in line] == [
        "PostUp = ip -4 route replace default dev %i table 101 metric 10"
    ]
    assert "meta mark & 0xff00ff { 0x1, 0x2 } return" in out["client.nft.j2"]
    servers = _names.back_servers_file("wg0")
    assert "servers-file=%s\n" % servers in out["dnsmasq-back.conf.j2[wg0]"]
    assert "server=" not in out["dnsmasq-back-nftset.conf.j2[wg0]"]
    assert "servers-file" not in out["dnsmasq-back.conf.j2[wg-1.x]"]
    assert "server=10.97.0.1\n" in out["dnsmasq-back-nftset.conf.j2[wg-1.x]"]
    unit = out["splitroute-client-health.service.j2"]
    assert "ExecStart=/usr/sbin/splitroute --role client health\n" in unit
    assert "wg-quick@wg0.service" in unit and "splitroute-dns-back@wg0.service" in unit


def test_the_dns_bypass_parts_each_reach_their_file():
    """DoT refused but to the configured DNS servers (the upstreams, the tunnels' dns, dot_allow), DoH to the
    built-in resolvers and the listed ones, QUIC to every set of every tunnel, the canaries answered NXDOMAIN by
    the front, listed names' HTTPS and SVCB records dropped by the back resolvers; all off: the chain is
    empty and the sets are declared without elements (a part turned off is emptied)."""
    out = renderings()
    nft = out["client.nft.j2"]
    assert "elements = { 192.0.2.85/32, 192.0.2.53/32, 10.99.0.1/32, 10.97.0.1/32 }" in nft
    assert "elements = { 2001:db8::53/128, fd10:99::1/128 }" in nft
    doh4 = next(line for line in nft.splitlines() if line.startswith("  set bypass_doh4 {") and "elements" in line)
    assert "1.1.1.1/32" in doh4 and "198.51.100.230/32" in doh4 and "45.90.28.0/24" in doh4
    assert nft.count("counter name bypass_dot reject") == 4
    assert nft.count("counter name bypass_doh reject") == 4
    quic = [line for line in nft.splitlines() if "counter name bypass_quic" in line]
    assert len(quic) == 2 * 2 * 4  # two tunnels, two families: both generations, the networks, the sources
    assert "    udp dport 443 ip daddr @wg0_v4_a counter name bypass_quic reject with icmpx type port-unreachable" in (
        quic
    )
    front = out["dnsmasq-front.conf.j2"]
    assert [line for line in front.splitlines() if line.startswith("address=")] == [
        "address=/use-application-dns.net/", "address=/mask.icloud.com/", "address=/mask-h2.icloud.com/"
    ]  # fmt: skip
    assert "filter-rr=HTTPS,SVCB\n" in out["dnsmasq-back.conf.j2[wg0]"]
    off = renderings(dns_bypass={})
    chain = off["client.nft.j2"].split("  chain bypass {\n", 1)[1].split("  }\n", 1)[0]
    assert chain == ""
    assert "elements" not in "".join(line for line in off["client.nft.j2"].splitlines() if "set bypass_" in line)
    assert "\naddress=" not in off["dnsmasq-front.conf.j2"] and "filter-rr" not in off["dnsmasq-back.conf.j2[wg0]"]
