"""Lab "what is my address" service: answer every HTTP GET with the caller's address.

Runs on the lab's internet host (srlab-echo.service). The body is the source
address of the request as this host sees it, one line; the header
X-Served-By carries the address the request was sent to. Listens on IPv4 and
IPv6 (separate sockets, so IPv4 callers are not shown as ::ffff:a.b.c.d), on
each --port (TCP: 80, and 443 and 853, the ports of DNS over HTTPS and over
TLS: plain HTTP there, enough to show whether a connection was made and by
which exit), and answers every UDP datagram on each --udp-port (443: QUIC's)
with the sender's address.
"""

from __future__ import annotations

import argparse
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    """Reply with the peer's address."""

    server_version = "srlab-echo/1"

    def do_GET(self) -> None:
        body = f"{self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", self.connection.getsockname()[0])
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("X-Served-By", self.connection.getsockname()[0])
        self.end_headers()


class EchoServer4(ThreadingHTTPServer):
    """IPv4 listener."""

    address_family = socket.AF_INET
    daemon_threads = True


class EchoServer6(ThreadingHTTPServer):
    """IPv6-only listener."""

    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def udp_echo(family: int, port: int) -> None:
    """Answer every datagram with its sender's address."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    while True:
        _data, peer = sock.recvfrom(2048)
        sock.sendto(("%s\n" % peer[0]).encode(), peer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", help="a TCP port (HTTP); default 80")
    parser.add_argument("--udp-port", type=int, action="append", default=[], help="a UDP port (echo)")
    args = parser.parse_args()
    servers = []
    for port in args.port or [80]:
        servers += [EchoServer4(("0.0.0.0", port), EchoHandler), EchoServer6(("::", port), EchoHandler)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    threads += [
        threading.Thread(target=udp_echo, args=(family, port), daemon=True)
        for port in args.udp_port
        for family in (socket.AF_INET, socket.AF_INET6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
