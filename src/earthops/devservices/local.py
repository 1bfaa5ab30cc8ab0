"""Start real services on 127.0.0.1 for a bounded time and stop them (never a public address)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
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


POSTGRES_INSTALL = "apt-get install -y postgresql"


def postgres_bin(name: str) -> str | None:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``…), or None if not installed."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def postgres_available() -> bool:
    """Whether the PostgreSQL server binaries are installed (else: ``POSTGRES_INSTALL``)."""
    pg_ctl = postgres_bin("pg_ctl")
    return bool(
        postgres_bin("initdb") and pg_ctl and Path(pg_ctl).resolve().with_name("createdb").exists()
    )


def _service_user() -> pwd.struct_passwd | None:
    """The non-root user to run PostgreSQL as when we are root (it refuses root); else None."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(user)
    raise EarthOpsError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _traversable(path: Path, uid: int) -> bool:
    """Whether user ``uid`` (not in the owner's group) can reach ``path``."""
    for part in (path, *path.parents):
        st = part.stat()
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _run_as(prefix: list[str], cmd: list[str]) -> None:
    full = [*prefix, *cmd]
    if prefix[:1] == ["su"]:  # su -c takes one shell string
        full = [*prefix, shlex.join(cmd)]
    done = subprocess.run(full, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise EarthOpsError(
            f"{' '.join(full)} failed ({done.returncode}): {done.stderr or done.stdout}"
        )


@contextmanager
def postgres_server(
    workdir: Path, *, user: str = "earthops", database: str = "earthops", start_timeout: int = 90
) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields ``postgresql://`` URL.

    ``initdb`` (trust auth, no fsync) in a fresh directory under ``workdir``, ``pg_ctl start``
    on 127.0.0.1 without a Unix socket, ``createdb database``; stopped (``-m immediate``) and
    removed on exit. As root it runs as the ``postgres`` (or ``nobody``) user; if that user
    cannot reach ``workdir`` (e.g. pytest's 0700 temp root) the cluster goes to a fresh
    directory under the system temp dir instead. Raises :class:`EarthOpsError` when the
    binaries are missing (``POSTGRES_INSTALL``) or a step fails.
    """
    if not postgres_available():
        raise EarthOpsError(f"PostgreSQL server binaries are not installed ({POSTGRES_INSTALL})")
    initdb, pg_ctl = str(postgres_bin("initdb")), str(postgres_bin("pg_ctl"))
    createdb = str(Path(pg_ctl).resolve().with_name("createdb"))  # not Debian's pg_wrapper
    account = _service_user()
    parent = Path(workdir).resolve()
    if account is not None and not _traversable(parent, account.pw_uid):
        parent = Path(tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="earthops-pg-", dir=parent))
    root.chmod(0o755)
    prefix: list[str] = []
    if account is not None:
        os.chown(root, account.pw_uid, account.pw_gid)
        runuser = shutil.which("runuser")
        name = account.pw_name
        prefix = [runuser, "-u", name, "--"] if runuser else ["su", name, "-s", "/bin/sh", "-c"]
    data, port = root / "data", free_port()
    options = f"-p {port} -c listen_addresses={LOOPBACK} -c unix_socket_directories='' -c fsync=off"
    try:
        _run_as(prefix, [initdb, "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                         "--no-sync"])  # fmt: skip
        _run_as(prefix, [pg_ctl, "-D", str(data), "-l", str(root / "pg.log"), "-w",
                         "-t", str(start_timeout), "-o", options, "start"])  # fmt: skip
        _run_as(prefix, [createdb, "-h", LOOPBACK, "-p", str(port), "-U", user, database])
        yield f"postgresql://{user}@{LOOPBACK}:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(EarthOpsError, subprocess.TimeoutExpired):
                _run_as(prefix, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
