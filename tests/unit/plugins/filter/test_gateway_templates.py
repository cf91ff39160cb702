"""The gateway role's templates, rendered from plans the filter accepts (issue 11, item 1).

Belt and braces behind the plan's checks: the templates are rendered with jinja2 from a plan
(StrictUndefined, so a template that reads a variable other than the plan and the few
validated role settings given here fails), and then
- no plan string holds a control character;
- every line of every file is one the template writes: it matches one of the template's own
  lines, each expression standing for "anything on this line" - so no value added a line;
- the keys of the WireGuard files appear once per section, one [Peer] per peer, and the
  resolvers have one server= per upstream and one host-record= per record;
- nft -c accepts the nftables files, dnsmasq --test the resolvers'.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections import Counter
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import comment

from ansible_collections.splitroute.vpn.plugins.filter.gateway_plan import (
    gateway_plan,
    gateway_plan_file,
    gateway_secrets,
)
from ansible_collections.splitroute.vpn.plugins.module_utils import _names

ROOT = Path(__file__).resolve().parents[4]
TEMPLATES = ROOT / "roles" / "gateway" / "templates"
ROLE_VARS = yaml.safe_load((ROOT / "roles" / "gateway" / "vars" / "main.yml").read_text())
# vars/main.yml's values the templates do not read (a task's own vars, registered results, packages)
TASK_TIME_VARS = {
    "__splitroute_gateway_tree_files",
    "__splitroute_gateway_changed",
    "__splitroute_gateway_package_list",
}
KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY2 = "HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo="
PSK = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
PRIVATE = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="

# Valid input that uses every field, with the odd-but-valid spellings a user may write.
SETTINGS = {
    "address": "10.4.0.1/24",
    "address6": "fd10:4::1/64",
    "veth_network": "10.255.255.0/24",
    "veth_network6": "fd00:255:255::/64",
    "table_base": "200",
    "priority_base": 2000,
    "local_networks": ["172.31.0.0/16", "192.168.7.0/24", "fd10:77::/48"],
    "interface": "wg0",
    "uplink": "eth0.100",
    "port": 51820,
    "mtu": "1420",
    "dns_upstreams": ["9.9.9.9", "2001:DB8::53"],
    "dns_records": [
        {"name": "vault.raff.local.", "address": "10.4.0.7"},
        {"name": "nas_1.lan", "address": "FD10:4::7"},
    ],
    "dns_port_base": 5300,
    "endpoint": "vpn-1.example.net",
    "endpoint_port": 443,
    "keepalive": 25,
    "input_policy": {"enabled": True, "ssh_from": ["192.0.2.0/24", "2001:db8:7::/48"], "ssh_port": 2222,
                     "allow": [{"proto": "udp", "port": 68}]},
    "dns_bypass": {"dot": True, "doh": True, "doh_addresses": ["198.51.100.230", "2001:db8:100::30"], "canaries": True,
                   "private_relay": True},
}  # fmt: skip
CLASSES = [
    {"range": "10.4.0.0/25", "range6": "fd10:4::/116", "exit": "direct"},
    {"range": "10.4.0.128/26", "range6": "fd10:4::1000/116", "exit": "provider"},
    {"range": "10.4.0.192/26", "range6": "fd10:4::2000/116", "exit": "other"},
]
PROVIDERS = [
    {"name": "provider", "server": "198.51.100.30", "port": "1194", "config": "client\n"},
    {"name": "other", "server": "198.51.100.50", "proto": "tcp", "config": "client\n", "dns_upstreams": ["10.8.0.1"],
     "fallback": ["provider"], "health": {"method": "http", "targets": ["198.51.100.1", "2001:db8::1"], "path": "/ok"}},
]  # fmt: skip
PEERS = [
    {"name": "laptop", "address": "10.4.0.10", "address6": "fd10:4::10", "public_key": KEY1, "preshared_key": PSK},
    {"name": "server.lan", "address": "10.4.0.130/32", "public_key": KEY2},
    {"name": "phone", "address": "10.4.0.200", "address6": "fd10:4::2001", "preshared_key": PSK},
    {"name": "tablet_2", "address": "10.4.0.201", "allowed_ips": ["10.4.0.0/24", "2001:db8:1::/48"]},
]
ENDPOINTS = ["vpn-1.example.net", "2001:db8:113::40", "198.51.100.40"]


def environment():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["comment"] = comment
    env.filters["b64decode"] = lambda text: base64.b64decode(text).decode()
    return env


def context(plan, **extra):
    """What the templates may read: the plan, the role's fixed vars and the settings the plan validated."""
    env = environment()
    values = {
        key: value for key, value in ROLE_VARS.items() if isinstance(value, str) and "{" not in value
    }  # the plain ones: paths and names
    values.update(
        __splitroute_gateway_plan=plan,
        ansible_managed="Ansible managed",
        inventory_hostname="gw",
        splitroute_gateway_interface=SETTINGS["interface"],
        splitroute_gateway_uplink=SETTINGS["uplink"],
        splitroute_gateway_wireguard_userspace="wireguard-go",
        splitroute_gateway_public_key=KEY2,
        __splitroute_gateway_peer_public_keys={p["name"]: KEY2 for p in plan["unmanaged"]},
        __splitroute_gateway_preshared_keys=gateway_secrets(PEERS),
    )
    # the paths and names in vars/main.yml are read from the plan ("{{ __splitroute_gateway_plan.X }}")
    for key, value in ROLE_VARS.items():
        if key in TASK_TIME_VARS:
            continue
        if isinstance(value, str) and value.startswith("{{ ") and value.endswith(" }}"):
            values[key] = env.compile_expression(value[3:-3])(values)
        elif isinstance(value, str) and "{{ " in value:
            values[key] = env.from_string(value).render(values)
    values.update(extra)
    return values


def render(name, plan, **extra):
    return environment().get_template(name).render(context(plan, **extra))


def rendered_files(plan):
    """Every file the role writes from a template, with the template it came from."""
    files = [(name, render(name, plan)) for name in ("wg.conf.j2", "gateway.nft.j2", "dnsmasq.conf.j2")]
    files.append(("wg-quick-dropin.conf.j2", render("wg-quick-dropin.conf.j2", plan)))
    for prov in plan["providers"]:
        for name in ("netns.nft.j2", "dnsmasq-provider.conf.j2"):
            files.append((name, render(name, plan, item=prov)))
    for peer in plan["unmanaged"]:
        item = {"item": peer, "content": base64.b64encode((PRIVATE + "\n").encode()).decode()}
        files.append(("peer-client.conf.j2", render("peer-client.conf.j2", plan, item=item)))
    return files


def line_patterns(template):
    """Each line of TEMPLATE as a regex, an expression standing for anything on the line."""
    patterns = []
    for line in (TEMPLATES / template).read_text().splitlines():
        if not line or re.fullmatch(r"\s*\{%.*%\}\s*", line) or line == "{{ ansible_managed | comment }}":
            continue
        parts = re.split(r"(\{\{.*?\}\}|\{%.*?%\})", line)
        regex = "".join(".*" if p.startswith("{{") else "" if p.startswith("{%") else re.escape(p) for p in parts)
        assert regex.strip(".*"), "%s writes a line that is only an expression: %s" % (template, line)
        patterns.append(re.compile(regex))
    return patterns


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.fixture(params=ENDPOINTS)
def plan(request):
    return gateway_plan_file(gateway_plan(PEERS, CLASSES, PROVIDERS, dict(SETTINGS, endpoint=request.param)))


def test_no_plan_string_holds_a_control_character(plan):
    for text in strings(plan):
        assert not any(ord(c) < 32 or ord(c) == 127 for c in text), text


def test_every_line_is_one_the_template_writes(plan):
    header = comment("Ansible managed").splitlines()
    for template, text in rendered_files(plan):
        assert "\r" not in text
        body = text.split("\n", 1)[1] if text.startswith("#!/bin/sh\n") else text
        assert body.splitlines()[: len(header)] == header, template
        assert strays(template, body) == [], template


def sections(text):
    """[(section, Counter of its keys)] of a wg-quick file."""
    out = []
    for line in text.splitlines():
        if line.startswith("["):
            out.append((line, Counter()))
        elif line and not line.startswith("#"):
            key, sep, value = line.partition(" = ")
            assert sep and value and "=" not in key, line
            out[-1][1][key] += 1
    return out


def test_the_dropin_repeats_the_interface_so_only_a_change_of_it_restarts_the_server(plan):
    conf = render("wg.conf.j2", plan)
    section = conf.split("[Interface]\n", 1)[1].split("\n[", 1)[0]
    lines = [line for line in section.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("Address = ") and "ListenPort = %d" % plan["port"] in lines
    dropin = render("wg-quick-dropin.conf.j2", plan)
    assert [line[len("#   ") :] for line in dropin.splitlines() if line.startswith("#   ")] == lines
    triggers = plan["units"]["triggers"][_names.wg_unit(plan["interface"])]
    assert triggers == {"restart": [_names.gateway_wg_dropin(plan["interface"])],
                        "reload": ["/etc/wireguard/%s.conf" % plan["interface"]]}  # fmt: skip


def test_the_wireguard_files_have_each_key_once(plan):
    server = sections(render("wg.conf.j2", plan))
    assert server[0] == ("[Interface]", Counter(Address=1, ListenPort=1, MTU=1, Table=1, PostUp=1))
    assert [s for s, _keys in server[1:]] == ["[Peer]"] * len(PEERS)
    for (_section, keys), peer in zip(server[1:], plan["peers"]):
        assert keys == Counter(PublicKey=1, AllowedIPs=1, **({"PresharedKey": 1} if peer["preshared_key"] else {}))
    for peer in plan["unmanaged"]:
        item = {"item": peer, "content": base64.b64encode(PRIVATE.encode()).decode()}
        client = sections(render("peer-client.conf.j2", plan, item=item))
        assert client[0] == ("[Interface]", Counter(PrivateKey=1, Address=1, DNS=1))
        assert client[1][0] == "[Peer]"
        assert client[1][1] == Counter(
            PublicKey=1,
            Endpoint=1,
            AllowedIPs=1,
            PersistentKeepalive=1,
            **({"PresharedKey": 1} if peer["preshared_key"] else {}),
        )


def test_the_preshared_keys_come_from_gateway_secrets(plan):
    text = render("wg.conf.j2", plan)
    assert text.count("PresharedKey = %s\n" % PSK) == 2  # laptop and phone
    phone = next(p for p in plan["unmanaged"] if p["name"] == "phone")
    item = {"item": phone, "content": base64.b64encode(PRIVATE.encode()).decode()}
    assert "PresharedKey = %s\n" % PSK in render("peer-client.conf.j2", plan, item=item)


def test_the_resolvers_have_one_line_per_upstream_and_record(plan):
    text = render("dnsmasq.conf.j2", plan)
    assert [line for line in text.splitlines() if line.startswith("server=")] == [
        "server=9.9.9.9",
        "server=2001:db8::53",
    ]
    assert [line for line in text.splitlines() if line.startswith("host-record=")] == [
        "host-record=vault.raff.local,10.4.0.7",
        "host-record=nas_1.lan,fd10:4::7",
    ]
    first = render("dnsmasq-provider.conf.j2", plan, item=plan["providers"][0])
    assert [line for line in first.splitlines() if line.startswith("server=")] == ["server=9.9.9.9@10.255.255.1"]
    # a provider with a fallback: its upstreams are those of the provider in use (splitroute health)
    other = render("dnsmasq-provider.conf.j2", plan, item=plan["providers"][1])
    assert [line for line in other.splitlines() if line.startswith("server")] == [
        "servers-file=/run/splitroute/gateway-dns/other-servers.conf"
    ]


def test_a_provider_with_a_fallback_may_leave_by_the_fallback_s_namespace(plan):
    """other falls back to provider: its classes may go to either veth, provider's namespace forwards them and
    other's resolver's queries (from other's veth address, to provider's upstreams) into its tunnel."""
    nft = render("gateway.nft.j2", plan)
    assert 'iifname "wg0" ip saddr 10.4.0.192/26 oifname { "srgw-other", "srgw-provider" } accept' in nft
    assert 'iifname "wg0" ip6 saddr fd10:4::2000/116 oifname { "srgw-other", "srgw-provider" } accept' in nft
    assert 'iifname "wg0" ip saddr 10.4.0.128/26 oifname { "srgw-provider" } accept' in nft
    ns = render("netns.nft.j2", plan, item=plan["providers"][0])
    assert 'iifname "srgw0" ip saddr 10.4.0.192/26 oifname "tun*" accept' in ns
    assert 'iifname "srgw0" ip6 saddr fd10:4::2000/116 oifname "tun*" accept' in ns
    assert (
        'iifname "srgw0" ip saddr 10.255.255.5 ip daddr { 9.9.9.9 } meta l4proto { tcp, udp } th dport 53'
        ' oifname "tun*" accept'
    ) in ns
    # and nothing of provider's in other's namespace: provider has no fallback
    assert "10.4.0.128/26" not in render("netns.nft.j2", plan, item=plan["providers"][1])


def test_the_endpoint_is_one_line(plan):
    phone = next(p for p in plan["unmanaged"] if p["name"] == "phone")
    item = {"item": phone, "content": base64.b64encode(PRIVATE.encode()).decode()}
    endpoint = [line for line in render("peer-client.conf.j2", plan, item=item).splitlines() if "Endpoint" in line]
    assert endpoint == ["Endpoint = %s:443" % plan["endpoint"]]
    assert plan["endpoint"] in ("vpn-1.example.net", "[2001:db8:113::40]", "198.51.100.40")


@pytest.mark.parametrize(
    ("program", "templates"),
    [
        (["nft", "-c", "-f"], ("gateway.nft.j2", "netns.nft.j2")),
        (["dnsmasq", "--test", "--conf-file=%s"], ("dnsmasq.conf.j2", "dnsmasq-provider.conf.j2")),
    ],
    ids=["nft", "dnsmasq"],
)
def test_the_validators_accept_the_files(tmp_path, plan, program, templates):
    for index, (template, text) in enumerate(rendered_files(plan)):
        if template not in templates:
            continue
        path = tmp_path / ("%d-%s" % (index, template[:-3]))
        path.write_text(text)
        argv = [arg % path if "%s" in arg else arg for arg in program]
        if "%s" not in " ".join(program):
            argv.append(str(path))
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (template, proc.stdout, proc.stderr)


def strays(template, text):
    header = len(comment("Ansible managed").splitlines())
    patterns = line_patterns(template)
    return [line for line in text.splitlines()[header:] if line and not any(p.fullmatch(line) for p in patterns)]


@pytest.mark.parametrize(
    ("template", "key", "value", "stray"),
    [
        ("wg.conf.j2", "address6", "fd10:4::1/64\nPreUp = touch /tmp/ran #", "PreUp = touch /tmp/ran #"),
        ("dnsmasq.conf.j2", "dns_upstreams", ["fd00::2%x\nFZINJ=1"], "FZINJ=1"),
    ],
)
def test_the_line_check_sees_a_line_a_value_adds(template, key, value, stray):
    """The check above would see the issue's injections, had a plan let one through."""
    tampered = dict(gateway_plan_file(gateway_plan(PEERS, CLASSES, PROVIDERS, SETTINGS)), **{key: value})
    assert strays(template, render(template, tampered)) == [stray]


def test_the_dns_bypass_refuses_the_peers_dot_and_doh_and_answers_the_canaries(plan):
    nft = render("gateway.nft.j2", plan)
    assert nft.count("counter name bypass_dot reject") == 4 and nft.count("counter name bypass_doh reject") == 4
    allow = next(line for line in nft.splitlines() if line.startswith("  set bypass_dot_allow4"))
    assert "9.9.9.9/32" in allow and "10.8.0.1/32" in allow  # the resolvers' upstreams
    doh6 = next(line for line in nft.splitlines() if line.startswith("  set bypass_doh6"))
    assert "2001:db8:100::30/128" in doh6 and "2606:4700:4700::1111/128" in doh6
    for item in [None] + plan["providers"]:
        text = render("dnsmasq.conf.j2", plan) if item is None else render("dnsmasq-provider.conf.j2", plan, item=item)
        assert [line for line in text.splitlines() if line.startswith("address=")] == [
            "address=/use-application-dns.net/", "address=/mask.icloud.com/", "address=/mask-h2.icloud.com/"
        ]  # fmt: skip
    off = gateway_plan_file(gateway_plan(PEERS, CLASSES, PROVIDERS, dict(SETTINGS, dns_bypass={})))
    assert "reject" not in render("gateway.nft.j2", off)
    assert "address=" not in render("dnsmasq.conf.j2", off).replace("listen-address=", "")


def test_the_input_policy_chain_takes_wireguard_the_peers_dns_and_ssh_from_ssh_from(plan):
    nft = render("gateway.nft.j2", plan)
    chain = nft.split("  chain input {\n", 1)[1].split("\n  }\n", 1)[0]
    assert "type filter hook input priority filter; policy drop;" in chain
    for line in (
        "udp dport 51820 accept",
        'iifname "wg0" meta l4proto { tcp, udp } th dport { 53, 5300, 5301 } accept',
        "tcp dport 2222 ip saddr { 192.0.2.0/24 } accept",
        "tcp dport 2222 ip6 saddr { 2001:db8:7::/48 } accept",
        "udp dport 68 accept",
    ):
        assert "    %s\n" % line in chain + "\n", line
    off = gateway_plan_file(gateway_plan(PEERS, CLASSES, PROVIDERS, dict(SETTINGS, input_policy={})))
    assert "chain input" not in render("gateway.nft.j2", off)
