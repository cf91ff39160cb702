"""The lab's fixtures and helpers live in molecule/resources/lablib.py, shared by every scenario."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from lablib import INVENTORY, Lab, Packet, changed_tasks, failures, in_network, lab, parse_packets, run_playbook

__all__ = [
    "INVENTORY",
    "Lab",
    "Packet",
    "changed_tasks",
    "failures",
    "in_network",
    "lab",
    "parse_packets",
    "run_playbook",
]
