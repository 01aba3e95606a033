#!/usr/bin/env python3
"""A tiny TCP key-value daemon (standard library only), the samples' always-available daemon.

Line protocol, one command per line, one reply line each::

    PING            -> PONG
    SET key value   -> OK            (value: the rest of the line)
    GET key         -> the value, or (nil)
    INCR key        -> the new integer (a missing key counts as 0)
    QUIT            -> BYE, then the connection closes

Errors are ``ERR <reason>``. It binds 127.0.0.1 only, keeps its data in memory, writes a line to
stdout when it starts and for each connection, and exits cleanly (status 0) on SIGTERM or SIGINT.

    python kvstore.py --port 7411
"""

from __future__ import annotations

import argparse
import os
import signal
import socketserver
import sys
import threading
from types import FrameType

HOST = "127.0.0.1"
MAX_LINE = 64 * 1024


class Store:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.lock = threading.Lock()

    def execute(self, line: str) -> str:
        verb, _, rest = line.strip().partition(" ")
        verb = verb.upper()
        if verb == "PING":
            return "PONG"
        if verb == "GET" and rest and " " not in rest:
            with self.lock:
                return self.data.get(rest, "(nil)")
        if verb == "SET":
            key, _, value = rest.partition(" ")
            if not key:
                return "ERR usage: SET key value"
            with self.lock:
                self.data[key] = value
            return "OK"
        if verb == "INCR" and rest and " " not in rest:
            with self.lock:
                try:
                    number = int(self.data.get(rest, "0")) + 1
                except ValueError:
                    return "ERR value is not an integer"
                self.data[rest] = str(number)
            return str(number)
        if verb in ("GET", "INCR"):
            return f"ERR usage: {verb} key"
        return f"ERR unknown command {verb!r}" if verb else "ERR empty command"


class Handler(socketserver.StreamRequestHandler):
    server: Server

    def handle(self) -> None:
        host, port = self.client_address[:2]
        log(f"connection from {host}:{port}")
        while True:
            raw = self.rfile.readline(MAX_LINE + 1)
            if not raw:
                return
            if len(raw) > MAX_LINE:
                self.wfile.write(b"ERR line too long\n")
                return
            line = raw.decode("utf-8", "replace")
            if line.strip().upper() == "QUIT":
                self.wfile.write(b"BYE\n")
                return
            self.wfile.write(self.server.store.execute(line).encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.store = Store()
        super().__init__((HOST, port), Handler)


def log(message: str) -> None:
    print(f"kvstore: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7411, help="TCP port on 127.0.0.1 (default 7411)")
    args = parser.parse_args(argv)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)  # leaves serve_forever() in the main thread

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server = Server(args.port)
    except OSError as exc:
        print(f"kvstore: cannot listen on {HOST}:{args.port}: {exc.strerror}", file=sys.stderr, flush=True)
        return 1
    log(f"listening on {HOST}:{args.port} (pid {os.getpid()})")
    try:
        server.serve_forever(poll_interval=3600)
    except SystemExit:
        pass
    finally:
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
