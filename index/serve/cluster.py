"""What ingest and serving share about joining a Ray cluster by address."""

from __future__ import annotations

import socket


def check_reachable(address: str, timeout: float = 10.0, to: str = "run") -> None:
    """Fail fast on a `host:port` where nothing listens: `ray.init` would retry for minutes.

    Args:
        address: What the user passed after `--ray`.
        timeout: Seconds to wait for a connection.
        to: What the local alternative does, for the message ("run", "serve").

    Raises:
        ConnectionError: Nothing accepted a connection at `address` within `timeout` seconds.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # "auto", "ray://..." and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with `ray start --head` "
            f"and pass the address it prints, or omit the address to {to} on a local Ray instance"
        ) from None
