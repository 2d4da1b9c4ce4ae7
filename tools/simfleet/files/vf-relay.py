#!/usr/bin/python3
"""TCP -> unix socket relay: the simulated fleet's way to the registry gateway and the release store.

Runs in the fleet's relay container (tools/fleet.py), on the fleet's own Docker
network: it accepts TCP connections on --port and forwards each, byte for byte,
to the local stack's gateway socket (tools/stack.py), bind-mounted into the
container. Devices thus use http://<prefix>-relay:8080/rest/v1/ and /store/
without ever aiming at a host address. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import socketserver
import sys
import threading

BUFFER = 65536


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until src ends; then end dst's writing half."""
    try:
        while True:
            data = src.recv(BUFFER)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class Relay(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, target: str) -> None:
        self.target = target
        super().__init__(("0.0.0.0", port), Handler)  # noqa: S104 (the fleet's own network)


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.server.target)
        except OSError as exc:
            print(f"relay: cannot reach {self.server.target}: {exc}", file=sys.stderr, flush=True)
            body = b"the registry gateway is down\n"
            self.request.sendall(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            upstream.close()
            return
        back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        back.start()
        pump(self.request, upstream)
        back.join()
        upstream.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--socket", required=True, help="the gateway's unix socket")
    args = parser.parse_args()
    with Relay(args.port, args.socket) as server:
        print(f"relay: 0.0.0.0:{args.port} -> {args.socket}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
