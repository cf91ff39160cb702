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
import struct
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


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def udp_echo(family: int, port: int) -> None:
    """Answer every datagram with its sender's address, from the address it was sent to (the socket is bound
    to all of them: without PKTINFO the kernel would pick the route's source address, and a connected client
    socket would not take the answer)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        level, kind = socket.IPPROTO_IPV6, socket.IPV6_PKTINFO
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        level, kind = socket.IPPROTO_IP, IP_PKTINFO
    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    while True:
        _data, ancdata, _flags, peer = sock.recvmsg(2048, socket.CMSG_SPACE(64))
        info = [data for lvl, typ, data in ancdata if (lvl, typ) == (level, kind)]
        if not info:
            continue
        if family == socket.AF_INET6:  # in6_pktinfo: the address, then the interface
            reply = info[0][:16] + struct.pack("@I", 0)
        else:  # in_pktinfo: interface, local address, the header's destination
            reply = struct.pack("@i4s4s", 0, info[0][8:12], bytes(4))
        sock.sendmsg([("%s\n" % peer[0]).encode()], [(level, kind, reply)], 0, peer)


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
