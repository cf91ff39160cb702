# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""The gateway role's part of the host program (see _host.py): COMMANDS name -> fn(plan, args, log)."""

from __future__ import annotations

COMMANDS = {}
