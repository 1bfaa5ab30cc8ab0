"""Start real services on 127.0.0.1 for a bounded time and stop them (never a public address)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from earthops.errors import EarthOpsError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(workdir: Path, *, start_timeout: float = 10.0) -> Iterator[str]:
    """A throw-away ``redis-server`` (no persistence) on a free loopback port; yields its URL.

    Raises :class:`EarthOpsError` when the binary is missing (``apt-get install redis-server``)
    or the server does not answer ``PING`` within ``start_timeout`` seconds.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        raise EarthOpsError("redis-server is not installed (apt-get install -y redis-server)")
    import redis

    port = free_port()
    args = [exe, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = redis.Redis(host=LOOPBACK, port=port)
    deadline = time.monotonic() + start_timeout
    try:
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise EarthOpsError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield f"redis://{LOOPBACK}:{port}"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
