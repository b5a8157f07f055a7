"""Local networking for the App and its database: free TCP ports, and one stable port per annotator."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

# Stable App ports are drawn from this range: above FiftyOne's 5151 and the usual development
# ports, below Linux's ephemeral range (32768-60999) where free_port() and mongod's ports fall.
STABLE_PORTS = range(20000, 30000)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind ``port`` on ``host`` now (connections of a server that has just
    stopped, in TIME_WAIT, do not count: servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def stable_ports(key: str, tries: int = 10) -> Iterator[int]:
    """Ports for ``key`` (e.g. workspace and annotator), the same on every run: the first one, then
    the next ones should it be taken.

    The browser keeps the App's layout per address, so a person who gets the same port at each
    launch finds the labelling panel where they left it.
    """
    first = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % len(STABLE_PORTS)
    for i in range(tries):
        yield STABLE_PORTS[(first + i) % len(STABLE_PORTS)]


__all__ = ["STABLE_PORTS", "free_port", "port_is_free", "stable_ports"]
