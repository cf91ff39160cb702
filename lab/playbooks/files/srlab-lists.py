"""Lab list server: publishes the files of a directory over HTTP and HTTPS, as list publishers do.

Runs on the lab's internet host (srlab-lists.service) and in the unit tests (tests/list_server.py).
GET /NAME answers with ROOT/NAME and its validators: an ETag (the SHA-256 of the body) and
Last-Modified (its mtime); a request whose If-None-Match is the ETag, or whose If-Modified-Since is
not older than the mtime, gets 304 Not Modified. A test breaks the list by writing ROOT/NAME.mode:
  500     an HTML error page with status 500
  html    an HTML page with status 200 (a captive portal)
  empty   an empty body with status 200
  hang    no answer for 60 s
Every request is appended to ROOT/requests.log as `PATH STATUS`.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = "."
_LOCK = threading.Lock()


class ListHandler(BaseHTTPRequestHandler):
    server_version = "srlab-lists/1"

    def log_message(self, format, *args):
        pass

    def _log(self, status):
        with _LOCK, open(os.path.join(ROOT, "requests.log"), "a", encoding="utf-8") as fh:
            fh.write("%s %d\n" % (self.path, status))

    def _send(self, status, body, ctype="text/plain; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(body)
        self._log(status)

    def do_GET(self) -> None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = os.path.join(ROOT, name)
        if not name or "/" in name or name.startswith(".") or not os.path.isfile(path):
            self._send(404, b"<html><body>not found</body></html>", "text/html")
            return
        try:
            with open(path + ".mode", encoding="utf-8") as fh:
                mode = fh.read().strip()
        except OSError:
            mode = ""
        if mode == "500":
            self._send(500, b"<!DOCTYPE html><html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
            return
        if mode == "html":
            self._send(200, b"<!DOCTYPE html>\n<html><body>Please log in</body></html>\n", "text/html")
            return
        if mode == "empty":
            self._send(200, b"")
            return
        if mode == "hang":
            time.sleep(60)
            return
        with open(path, "rb") as fh:
            body = fh.read()
        mtime = int(os.stat(path).st_mtime)
        etag = '"%s"' % hashlib.sha256(body).hexdigest()
        validators = [("ETag", etag), ("Last-Modified", email.utils.formatdate(mtime, usegmt=True))]
        since = self.headers.get("If-Modified-Since")
        match = self.headers.get("If-None-Match")
        if match is not None:
            fresh = etag in [m.strip() for m in match.split(",")]
        elif since:
            parsed = email.utils.parsedate_to_datetime(since)
            fresh = parsed is not None and parsed.timestamp() >= mtime
        else:
            fresh = False
        if fresh:
            self._send(304, b"", headers=validators)
            return
        self._send(200, body, headers=validators)


class Server4(ThreadingHTTPServer):
    address_family = socket.AF_INET
    daemon_threads = True


class Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def servers(http_port, https_port=None, cert=None, key=None, address4="0.0.0.0", address6="::"):
    out = []
    for port, tls in ((http_port, False), (https_port, True)):
        if not port:
            continue
        for cls, address in ((Server4, address4), (Server6, address6)):
            if address is None:
                continue
            server = cls((address, port), ListHandler)
            if tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert, key)
                server.socket = context.wrap_socket(server.socket, server_side=True)
            out.append(server)
    return out


def main() -> None:
    global ROOT  # noqa: PLW0603 (one directory per process)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--http", type=int, default=8080)
    parser.add_argument("--https", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--address4", default="0.0.0.0")
    parser.add_argument("--address6", default="::")
    args = parser.parse_args()
    ROOT = args.root
    running = servers(args.http, args.https, args.cert, args.key, args.address4, args.address6 or None)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
