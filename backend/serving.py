"""Serving the app with several worker processes that share the load evenly.

uvicorn's own ``--workers`` hands one listening socket to every worker, and whichever worker wakes
first accepts the next connection. Clients that keep their connection open (browsers, the API
client) stay on the worker that accepted them, so a burst of logins can pin most annotators to
one worker: measured with 48 annotators and 2 workers, one worker used 70% of the app's CPU time
and the other 30%; at 36 annotators p99 latency was more than twice what it is with the sockets
below.

Here every worker opens its own listening socket on the same address with ``SO_REUSEPORT``, and
the kernel spreads new connections across them by hashing each connection's addresses. That needs
Linux (other systems accept the option without balancing), so elsewhere ``serve`` falls back to
uvicorn's workers.

The supervisor starts the workers and stops them all on SIGTERM or SIGINT. A worker that exits
with an error before it ever served (the app cannot import, the database URL has no driver, ...)
is a start-up failure that a restart cannot fix: the whole server stops with that worker's exit
code. Any other death (killed by a signal, as the OOM killer does, or an exit after serving) is
replaced, after a back-off per worker slot that starts at ``BACKOFF_START_S`` and doubles up to
``BACKOFF_CAP_S`` while replacements keep dying, and starts over once a worker has served for
``STABLE_S``: a crash loop costs little CPU, and the healthy workers keep serving meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import multiprocessing
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType

logger = logging.getLogger("saferlhf.serve")

APP = "backend.main:create_app"
BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
STABLE_S = 30.0
STOP_GRACE_S = 30.0
BACKLOG = 2048


class PortInUse(RuntimeError):
    pass


def balances_connections() -> bool:
    """Whether SO_REUSEPORT spreads connections across sockets here (Linux only)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_port_free(host: str, port: int) -> None:
    """Refuse a port that something else listens on, before the workers join it with
    SO_REUSEPORT: a second copy of this server (same user) would otherwise silently share it."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: connections of a server that just stopped (TIME_WAIT) do not count as
        # "in use"; a listening socket still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} on {host} is already in use by another program") from exc
            raise


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) that other workers of this server may also bind."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    log_level: str = "info"
    access_log: bool = True
    proxy_headers: bool = True


def run_worker(options: ServeOptions, ready: Event) -> None:
    """One worker process: its own SO_REUSEPORT socket, one uvicorn server; ``ready`` is set once
    it accepts requests."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                ready.set()

    sock = reuse_port_socket(options.host, options.port)
    config = uvicorn.Config(
        APP,
        factory=True,
        log_level=options.log_level,
        access_log=options.access_log,
        proxy_headers=options.proxy_headers,
    )
    config.load()  # builds the app now, so that what it allocated can be frozen below
    # Move everything alive after start-up out of the garbage collector's generations, so that
    # full collections while serving scan only the objects made since.
    gc.collect()
    gc.freeze()
    Server(config).run(sockets=[sock])


@dataclass
class Slot:
    """One of the N worker places: its current process, and its back-off when that keeps dying."""

    process: BaseProcess | None = None
    ready: Event | None = None
    ready_at: float | None = None  # when the supervisor first saw the worker ready
    failures: int = 0  # deaths since a worker of this slot last served for STABLE_S
    restart_at: float = 0.0


def describe_exit(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


class Supervisor:
    def __init__(self, options: ServeOptions, workers: int) -> None:
        self.options = options
        self.size = workers
        self.context = multiprocessing.get_context("spawn")
        self.slots = [Slot() for _ in range(workers)]
        self.stopping = False

    def _spawn(self, slot: Slot) -> None:
        slot.ready = self.context.Event()
        slot.ready_at = None
        slot.process = self.context.Process(
            target=run_worker, args=(self.options, slot.ready), name="saferlhf-api"
        )
        slot.process.start()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self.stopping:
            logger.info("received %s, stopping %d workers", signal.Signals(signum).name, self.size)
        self.stopping = True

    def run(self) -> int:
        """Serve until a signal (exit code 0) or a worker's start-up failure (its exit code)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in self.slots:
                self._spawn(slot)
            logger.info(
                "serving on http://%s:%d with %d workers (SO_REUSEPORT)",
                self.options.host,
                self.options.port,
                self.size,
            )
            return self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> int:
        while not self.stopping:
            now = time.monotonic()
            for slot in self.slots:
                if self.stopping:
                    break
                if slot.process is None:
                    if now >= slot.restart_at:
                        self._spawn(slot)
                    continue
                if slot.process.is_alive():
                    if slot.ready_at is None and slot.ready is not None and slot.ready.is_set():
                        slot.ready_at = now
                    continue
                failed = self._on_exit(slot, now)
                if failed is not None:
                    return failed
            time.sleep(0.2)
        return 0

    def _on_exit(self, slot: Slot, now: float) -> int | None:
        """Schedule the replacement of a dead worker, or return the exit code to stop with."""
        assert slot.process is not None
        pid, code = slot.process.pid, slot.process.exitcode if slot.process.exitcode is not None else 1
        served = slot.ready_at is not None or (slot.ready is not None and slot.ready.is_set())
        slot.process = None
        if not served and code >= 0:
            logger.error(
                "worker %d exited with code %s before it was ready; stopping the server "
                "(see its error above)",
                pid,
                code,
            )
            return code if code > 0 else 1
        if slot.ready_at is not None and now - slot.ready_at >= STABLE_S:
            slot.failures = 0
        delay = min(BACKOFF_START_S * 2**slot.failures, BACKOFF_CAP_S)
        slot.failures += 1
        slot.restart_at = now + delay
        logger.warning("worker %d %s; starting a new one in %.1fs", pid, describe_exit(code), delay)
        return None

    def _stop_all(self) -> None:
        # SIGTERM, not SIGINT: uvicorn treats a second SIGINT as "quit now", and on Ctrl-C the
        # workers already got one from the terminal.
        processes = [slot.process for slot in self.slots if slot.process is not None]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # exited just now
                    process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                logger.warning("worker %d did not stop in %.0fs; killing it", process.pid, STOP_GRACE_S)
                process.kill()
                process.join(timeout=5)


def serve_balanced(options: ServeOptions, workers: int) -> int:
    """Serve with ``workers`` SO_REUSEPORT workers; returns the exit code."""
    check_port_free(options.host, options.port)
    return Supervisor(options, workers).run()
