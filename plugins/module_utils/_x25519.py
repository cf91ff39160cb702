# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""X25519 (RFC 7748) and WireGuard's key encoding, in pure Python (standard library only).

x25519(k, u)              RFC 7748 section 5: the Montgomery ladder on integers, with the
                          scalar clamped and the u-coordinate's top bit masked
clamp(raw)                the scalar clamping (what `wg genkey` applies to its random bytes)
new_private_key()         a new private key, base64, as `wg genkey` prints it
public_key(private_b64)   its public key, base64, as `wg pubkey` prints it
decode_key(text)          the 32 bytes of a key in WireGuard's base64, or None

A key in WireGuard's encoding is 44 characters: the standard base64 of 32 bytes, with its
padding '=' and the unused low bits of the last character zero (wg refuses any other form).

The ladder runs on Python integers, which are not constant time. It serves key generation
and public key derivation on the host and the controller, not a long-running service that
an attacker can time.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

P = 2**255 - 19
A24 = 121665  # (486662 - 2) / 4
BASE_POINT = (9).to_bytes(32, "little")
KEY_BYTES = 32
KEY_CHARS = 44
# 43 characters then '=': the 43rd carries the last 4 bits of the key and 2 padding bits, which
# must be zero (A E I M ... 8), as `wg` checks.
_KEY_TEXT = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\Z")


def clamp(raw):
    """RFC 7748's decodeScalar25519 bit operations: a multiple of 8, bit 254 set, bit 255 clear."""
    if len(raw) != KEY_BYTES:
        raise ValueError("an X25519 scalar is 32 bytes, not %d" % len(raw))
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def x25519(k, u):
    """The RFC 7748 function X25519(k, u): 32-byte scalar K (clamped here) times the point with
    32-byte u-coordinate U (its top bit masked), the 32-byte u-coordinate of the result."""
    if len(u) != KEY_BYTES:
        raise ValueError("an X25519 u-coordinate is 32 bytes, not %d" % len(u))
    scalar = int.from_bytes(clamp(k), "little")
    x_1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x_2, z_2, x_3, z_3 = 1, 0, x_1, 1
    swap = 0
    for t in range(254, -1, -1):
        k_t = (scalar >> t) & 1
        swap ^= k_t
        if swap:
            x_2, x_3 = x_3, x_2
            z_2, z_3 = z_3, z_2
        swap = k_t
        a = (x_2 + z_2) % P
        aa = a * a % P
        b = (x_2 - z_2) % P
        bb = b * b % P
        e = (aa - bb) % P
        c = (x_3 + z_3) % P
        d = (x_3 - z_3) % P
        da = d * a % P
        cb = c * b % P
        x_3 = (da + cb) * (da + cb) % P
        z_3 = x_1 * (da - cb) * (da - cb) % P
        x_2 = aa * bb % P
        z_2 = e * (aa + A24 * e) % P
    if swap:
        x_2, x_3 = x_3, x_2
        z_2, z_3 = z_3, z_2
    return (x_2 * pow(z_2, P - 2, P) % P).to_bytes(KEY_BYTES, "little")


def encode_key(raw):
    """32 bytes in WireGuard's base64 (44 characters)."""
    if len(raw) != KEY_BYTES:
        raise ValueError("a WireGuard key is 32 bytes, not %d" % len(raw))
    return base64.b64encode(raw).decode("ascii")


def decode_key(text):
    """The 32 bytes of TEXT, a key in WireGuard's base64, or None when TEXT is not exactly one
    (other types, other lengths, spaces or newlines, non-zero padding bits)."""
    if not isinstance(text, str) or not _KEY_TEXT.match(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


def new_private_key():
    """A new private key as `wg genkey` makes it: 32 bytes of os.urandom, clamped, base64."""
    return encode_key(clamp(os.urandom(KEY_BYTES)))


def public_key(private_b64):
    """The public key of the base64 private key PRIVATE_B64, base64: X25519(private, 9), what
    `wg pubkey` prints. A ValueError (that does not hold the input) when it is not a key."""
    raw = decode_key(private_b64)
    if raw is None:
        raise ValueError("not a WireGuard key (44 characters of base64 of 32 bytes)")
    return encode_key(x25519(raw, BASE_POINT))
