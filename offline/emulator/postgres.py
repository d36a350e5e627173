"""Real PostgreSQL servers standing in for an Aurora global database, one per region.

The binaries are the ``pgserver`` wheel's (PostgreSQL 16.2). The primary region's server streams
its WAL (physical replication, ``pg_basebackup -R``) to a hot standby in every other region: the
honest stand-in for Aurora's storage-level replication (asynchronous; a standby serves reads and
refuses writes with ``cannot execute INSERT in a read-only transaction``). Servers listen on unix
sockets only (``listen_addresses=''``), each in its own directory, which is what the functions get
as ``DB_HOST`` (psycopg reads a host starting with ``/`` as a socket directory).

``initdb`` and ``postgres`` refuse to run as root: when we are root, every server runs as the
unprivileged system user ``pgserver`` (created with ``useradd`` by pgserver's own helper, as
pgserver does), and its directories are given to that user.

Roles and authentication: the superuser ``postgres`` connects over the socket without a password
(trust, the operator's path; it stands in for the master user); every other role must give its
password (scram-sha-256), so a function connects only with what its secret holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

PORT = 5432
SUPERUSER = "postgres"
SYSTEM_USER = "pgserver"
READY_TIMEOUT_S = 30.0


class PostgresError(RuntimeError):
    """A server did not do what was asked (its log's tail is in the message)."""


def bin_dir() -> Path:
    import warnings

    try:
        with warnings.catch_warnings():  # pgserver's import asks platformdirs for a runtime dir it never uses here
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except ModuleNotFoundError:
        raise PostgresError(
            "the pgserver wheel (PostgreSQL binaries) is not installed: run `make setup` (requirements-dev.txt)"
        ) from None
    return Path(POSTGRES_BIN_PATH)


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare_root_run(path: Path) -> None:
    """Root only: the unprivileged user, able to reach the binaries and to own ``path``."""
    import stat

    binaries = bin_dir()  # imports pgserver quietly first
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    marker = binaries.parent / ".mrk-toolkit-permissions"
    if not marker.exists():
        ensure_prefix_permissions(binaries)
        ensure_folder_permissions(binaries, stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(binaries.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(binaries.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        marker.touch()
    ensure_prefix_permissions(path)
    assert entry is not None
    for folder, _, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)


def _run(tool: str, *args: str, timeout: float = 60.0) -> str:
    kwargs: dict[str, Any] = {"user": SYSTEM_USER} if _as_root() else {}
    done = subprocess.run(  # noqa: S603
        [str(bin_dir() / tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd="/",
        **kwargs,
    )
    if done.returncode != 0:
        raise PostgresError(f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    return done.stdout


@dataclass
class RegionServer:
    """One region's server: a data directory and the socket directory clients use as host."""

    region: str
    root: Path
    primary: bool = True
    pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def conninfo(self, user: str = SUPERUSER, dbname: str = "postgres", password: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        extra = {"password": password} if password is not None else {}
        return make_conninfo(host=str(self.socket_dir), port=PORT, user=user, dbname=dbname, **extra)

    def connect(self, user: str = SUPERUSER, dbname: str = "postgres", **kwargs: Any) -> Any:
        import psycopg

        return psycopg.connect(self.conninfo(user, dbname, kwargs.pop("password", None)), autocommit=True, **kwargs)

    def query(self, sql: str, *params: Any, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        with self.connect(dbname=dbname) as conn:
            cur = conn.execute(sql, params or None)
            return cur.fetchall() if cur.description else []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        _run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(READY_TIMEOUT_S)),
            "-o",
            f"-k {self.socket_dir} -p {PORT}",
            "start",
        )
        self.pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown (clients disconnected, WAL flushed and sent to the standbys);
        ``immediate``: an abrupt stop, as a crash."""
        if self.running():
            _run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        self.pid = None

    def kill(self) -> None:
        """SIGKILL the postmaster (an unplanned loss of the primary); its children exit as they
        notice, and a restart would need crash recovery."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _wait_gone(self.pid)
        _kill_children_of(self.data_dir)
        self.pid = None

    def running(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    def in_recovery(self) -> bool:
        return bool(self.query("SELECT pg_is_in_recovery()")[0][0])

    def promote(self) -> None:
        _run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", str(int(READY_TIMEOUT_S)), "promote")
        self.primary = True

    def follow(self, source: RegionServer) -> None:
        """Stream from ``source`` (primary_conninfo reloads without a restart since PostgreSQL 13)."""
        from psycopg import sql

        self.query(sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(sql.Literal(source.conninfo())).as_string())
        self.query("SELECT pg_reload_conf()")
        self.primary = False

    def replay_lsn(self) -> str:
        return str(self.query("SELECT pg_last_wal_replay_lsn()")[0][0])

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return True


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def server_processes(root: Path) -> list[int]:
    """Pids of postgres processes whose data directory is under ``root`` (by command line, or by
    working directory: a server's children run in its data directory)."""
    found = []
    mark = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if not cmdline or (not cmdline[0].endswith(b"postgres") and b"postgres:" not in cmdline[0]):
            continue
        if cwd.startswith(mark) or mark.encode() in b" ".join(cmdline):
            found.append(int(entry.name))
    return [pid for pid in found if _alive(pid)]


def _kill_children_of(data_dir: Path) -> None:
    for pid in server_processes(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in server_processes(data_dir):
        _wait_gone(pid)


PRIMARY_SETTINGS = {
    "listen_addresses": "''",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_keep_size": "'256MB'",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "fsync": "on",
    "shared_buffers": "'16MB'",
    "max_connections": "40",
    "unix_socket_permissions": "0777",
}


@dataclass
class GlobalDatabase:
    """A primary server and one streaming hot standby per secondary region.

    ``promote(region)`` makes a standby the writer; ``follow(region)`` re-points the others at
    it; ``rejoin(region)`` turns a cleanly stopped old primary into a standby of the new one.
    """

    primary_region: str
    secondary_regions: tuple[str, ...]
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mrk-pg-")))
    servers: dict[str, RegionServer] = field(default_factory=dict)
    # Called with the region just promoted (the emulated global writer endpoint follows it).
    on_promoted: list[Callable[[str], None]] = field(default_factory=list)

    # Every root this process created (tests check that no server outlives its run).
    created_roots: ClassVar[list[Path]] = []

    def __post_init__(self) -> None:
        GlobalDatabase.created_roots.append(self.root)
        # Unix socket paths are limited to 107 bytes: keep the root short.
        if len(str(self.root)) > 60:
            raise PostgresError(f"{self.root} is too long for unix socket paths; use a shorter temp dir")

    @property
    def writer_region(self) -> str:
        return next(r for r, s in self.servers.items() if s.primary and s.running())

    def server(self, region: str) -> RegionServer:
        return self.servers[region]

    def start(self) -> GlobalDatabase:
        try:
            self._start_primary()
            for region in self.secondary_regions:
                self._start_standby(region, self.servers[self.primary_region])
            self.wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def _new_dirs(self, region: str) -> RegionServer:
        server = RegionServer(region=region, root=self.root / region)
        server.socket_dir.mkdir(parents=True)
        if _as_root():
            _prepare_root_run(self.root)
        self.servers[region] = server
        return server

    def _start_primary(self) -> None:
        server = self._new_dirs(self.primary_region)
        _run("initdb", "-D", str(server.data_dir), "-U", SUPERUSER, "--auth-local=trust", "--encoding=UTF8", "-N")
        with (server.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in PRIMARY_SETTINGS.items())
        (server.data_dir / "pg_hba.conf").write_text(
            f"local all {SUPERUSER} trust\nlocal replication {SUPERUSER} trust\nlocal all all scram-sha-256\n"
        )
        server.start()

    def _start_standby(self, region: str, source: RegionServer) -> RegionServer:
        server = self._new_dirs(region) if region not in self.servers else self.servers[region]
        if server.data_dir.exists():
            shutil.rmtree(server.data_dir)
        _run("pg_basebackup", "-D", str(server.data_dir), "-R", "-X", "stream", "-c", "fast", "-d", source.conninfo())
        server.primary = False
        server.start()
        return server

    def wait_streaming(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Every standby connected to the writer (pg_stat_replication lists it as streaming)."""
        writer = self.servers[self.writer_region]
        expected = sum(1 for s in self.servers.values() if not s.primary and s.running())
        deadline = time.monotonic() + timeout
        while True:
            rows = writer.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            if rows[0][0] >= expected:
                return
            if time.monotonic() > deadline:
                raise PostgresError(f"standbys did not stream from {writer.region} within {timeout:.0f}s")
            time.sleep(0.05)

    def writer_lsn(self) -> str:
        return str(self.servers[self.writer_region].query("SELECT pg_current_wal_lsn()")[0][0])

    def wait_replayed(self, region: str, lsn: str, timeout: float = READY_TIMEOUT_S) -> float:
        """Seconds until ``region``'s standby has replayed WAL up to ``lsn``."""
        server = self.servers[region]
        started = time.monotonic()
        while True:
            rows = server.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", lsn)
            if rows[0][0]:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise PostgresError(f"{region} did not replay WAL up to {lsn} within {timeout:.0f}s")
            time.sleep(0.005)

    def promote(self, region: str) -> None:
        self.servers[region].promote()
        for listener in self.on_promoted:
            listener(region)

    def follow(self, region: str) -> None:
        """Every other running standby streams from ``region`` (which was just promoted)."""
        for other, server in self.servers.items():
            if other != region and not server.primary and server.running():
                server.follow(self.servers[region])

    def rejoin(self, region: str, new_primary: str) -> None:
        """A cleanly stopped former primary becomes a standby of ``new_primary`` (no rewind needed
        after a clean switchover; after a crash the old data is discarded and re-copied)."""
        server = self.servers[region]
        (server.data_dir / "standby.signal").touch()
        if _as_root():
            _prepare_root_run(server.data_dir)
        server.primary = False
        server.start()
        server.follow(self.servers[new_primary])

    def rebuild(self, region: str, new_primary: str) -> None:
        """Discard a crashed former primary's data and copy it afresh from ``new_primary``."""
        self.servers[region].kill()
        self._start_standby(region, self.servers[new_primary])

    def stop(self) -> None:
        """Stop every server (immediate: nothing to keep) and remove the temp directory. Any
        process left over is killed; one that survives that is an error (no orphan postgres)."""
        for server in self.servers.values():
            with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
                if server.running():
                    server.stop("immediate")
        _kill_children_of(self.root)
        left = server_processes(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        if left:
            raise PostgresError(f"postgres processes {left} survived the shutdown of {self.root}")

    def __enter__(self) -> GlobalDatabase:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def global_database(primary: str, secondaries: tuple[str, ...]) -> Iterator[GlobalDatabase]:
    with GlobalDatabase(primary, secondaries) as db:
        yield db
