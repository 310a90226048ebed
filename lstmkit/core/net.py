"""Small system helpers: a free TCP port on the loopback (tests, local services, tuning workers)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
