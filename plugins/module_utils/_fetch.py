# Copyright (c) splitroute.vpn contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils is PRIVATE to splitroute.vpn; breaking changes can occur any time.
"""One HTTP(S) GET of a published list, as the host program's `refresh` makes it (no ansible, only the
standard library).

- Conditional: the ETag and Last-Modified of the last good copy go as If-None-Match and
  If-Modified-Since; a 304 is "not modified" and carries no body.
- Bounded: every socket operation and the whole request end by DEADLINE (the source's timeout, from the
  first connect); a body longer than MAX_BYTES is refused while it is read, never kept whole. No
  compression is asked for (a small body cannot unpack into a large one).
- TLS: verified against the system CA store or the source's own CA (PEM text), host name checked;
  with a pin, the SHA-256 of the server's certificate (DER) must be the pin as well, on every hop.
- Redirects: at most MAX_REDIRECTS, never from https to http.

Anything else (a status other than 200 and 304, a refused connection, a TLS failure) raises
FetchError with a one-line reason: the caller keeps its last good copy.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import ssl
import time
import urllib.parse

MAX_REDIRECTS = 3
CHUNK = 65536
USER_AGENT = "splitroute-lists/1"
_PIN = re.compile(r"^[0-9a-f]{64}$")


class FetchError(Exception):
    """A fetch that gave no usable answer; str() is the reason."""


class Fetched:
    """A fetch's answer: status 200 (BODY, bytes) or 304 (BODY None); its ETag and Last-Modified (or None);
    the URL it came from at last (after redirects); content_type (lower case, without parameters)."""

    def __init__(self, status, body, etag, last_modified, url, content_type):
        self.status, self.body, self.etag, self.last_modified = status, body, etag, last_modified
        self.url, self.content_type = url, content_type

    @property
    def not_modified(self):
        return self.status == 304


def normalize_pin(pin):
    """A certificate pin as 64 lower-case hex digits: colons and case as `openssl x509 -fingerprint -sha256`
    prints them are accepted. Raises ValueError."""
    text = str(pin).replace(":", "").strip().lower()
    if not _PIN.match(text):
        raise ValueError("a sha256 pin is 64 hex digits (colons allowed), not %r" % (pin,))
    return text


def check_url(url):
    """URL's (scheme, host, port, path with query) when it is an http or https URL with a host and no
    credentials or fragment. Raises ValueError."""
    if not isinstance(url, str) or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("%r: a URL without whitespace or control characters" % (url,))
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("%r: only http and https URLs" % url)
    if not parts.hostname:
        raise ValueError("%r: no host" % url)
    if parts.username is not None or parts.password is not None:
        raise ValueError("%r: credentials in a URL are printed in logs; not taken" % url)
    if parts.fragment:
        raise ValueError("%r: a fragment (#...) is not sent to a server" % url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("%r: %s" % (url, exc)) from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def _context(cadata):
    context = ssl.create_default_context(cadata=cadata) if cadata else ssl.create_default_context()
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    # strict X.509 on every release: Python 3.13 (Debian 13) has it by default, 3.11 (Debian 12) not, and a
    # CA that one host takes must not be refused by another
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _left(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timed out")
    return left


def _one(url, headers, deadline, max_bytes, cadata, pin):
    scheme, host, port, path = check_url(url)
    if scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=_left(deadline), context=_context(cadata))
    else:
        conn = http.client.HTTPConnection(host, port, timeout=_left(deadline))
    try:
        conn.connect()
        if scheme == "https" and pin:
            der = conn.sock.getpeercert(binary_form=True)
            seen = hashlib.sha256(der).hexdigest()
            if seen != pin:
                raise FetchError("the server's certificate has sha256 %s, the pin is %s" % (seen, pin))
        conn.sock.settimeout(_left(deadline))
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status in (301, 302, 303, 307, 308):
            return resp.status, None, resp
        if resp.status == 304:
            return 304, None, resp
        if resp.status != 200:
            raise FetchError("HTTP %d %s" % (resp.status, resp.reason))
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchError("the body is %s bytes, more than the limit of %d" % (length, max_bytes))
        chunks, size = [], 0
        while True:
            left = _left(deadline)
            if conn.sock is not None:
                conn.sock.settimeout(left)
            chunk = resp.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError("the body is more than the limit of %d bytes" % max_bytes)
            chunks.append(chunk)
        return 200, b"".join(chunks), resp
    finally:
        conn.close()


def fetch(url, etag=None, last_modified=None, timeout=30, max_bytes=16 << 20, cadata=None, pin=None):
    """GET URL (see the module's doc). Returns Fetched; raises FetchError."""
    pin = normalize_pin(pin) if pin else None
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "text/plain, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    try:
        for _hop in range(MAX_REDIRECTS + 1):
            status, body, resp = _one(current, headers, deadline, max_bytes, cadata, pin)
            if status in (200, 304):
                ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
                return Fetched(status, body, resp.getheader("ETag"), resp.getheader("Last-Modified"), current, ctype)
            location = resp.getheader("Location")
            if not location:
                raise FetchError("HTTP %d without a Location" % status)
            target = urllib.parse.urljoin(current, location)
            if current.startswith("https:") and not target.startswith("https:"):
                raise FetchError("a redirect from https to %s is not followed" % target.split(":", 1)[0])
            current = target
        raise FetchError("more than %d redirects" % MAX_REDIRECTS)
    except FetchError:
        raise
    # (an SSLCertVerificationError is a ValueError too)
    except ssl.SSLCertVerificationError as exc:
        raise FetchError("TLS: %s" % (exc.verify_message or exc)) from exc
    except ssl.SSLError as exc:
        raise FetchError("TLS: %s" % exc) from exc
    except ValueError as exc:
        raise FetchError(str(exc)) from exc
    except (socket.timeout, TimeoutError) as exc:
        raise FetchError("timed out") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError("%s: %s" % (type(exc).__name__, exc)) from exc
