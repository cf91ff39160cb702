# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This doc fragment is PRIVATE to splitroute.vpn; it may change at any time.

from __future__ import annotations


class ModuleDocFragment:
    # Standard attributes of every module in this collection.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Computes the same operations as a real run and reports them without applying any.
  diff_mode:
    support: full
    description: Returns C(before) and C(after) of what the module manages.
  platform:
    support: full
    platforms: posix
    description: Linux only (netlink, nftables).
"""

    NETNS = r"""
options:
  netns:
    description:
      - Name of a network namespace (as listed by C(ip netns), under C(/run/netns)) to act inside.
      - When omitted the module acts in the network namespace of the managed host's Ansible process.
      - The namespace must already exist; it is an error if it does not.
    type: str
"""

    PYROUTE2 = r"""
requirements:
  - pyroute2 >= 0.7.2 on the managed host (Debian 12 C(python3-pyroute2) is 0.7.2; 0.9 is tested too).
attributes:
  netlink:
    support: full
    description: Reads and changes kernel state through netlink with pyroute2; no C(ip) commands are run.
"""

    NFTABLES = r"""
requirements:
  - nftables >= 1.0 on the managed host. The libnftables Python binding (Debian C(python3-nftables)) is used
    when importable, otherwise the C(nft) binary in JSON mode (C(nft -j)).
attributes:
  nftables_json:
    support: full
    description: Reads and changes nftables through its JSON API; nothing is parsed from C(nft list) text.
"""
