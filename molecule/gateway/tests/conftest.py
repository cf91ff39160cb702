"""The lab's fixtures and helpers live in molecule/resources/lablib.py, shared by every scenario."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "resources"))

from lablib import INVENTORY, Lab, Packet, in_network, lab, parse_packets

__all__ = ["INVENTORY", "Lab", "Packet", "in_network", "lab", "parse_packets"]
