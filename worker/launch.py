"""Starting and stopping a stage's subprocess (torch-free: the worker parent never imports torch).

One GPU: ``python -m training STAGE --config run.json``. Several: the ``deepspeed`` launcher, with
a hostfile when the job spans nodes. The process gets its own process group (start_new_session), so
a stop signal reaches the launcher and every rank it started, and it is killed if the worker
process that started it dies (PR_SET_PDEATHSIG), so a kill -9'd worker leaves no orphan writing
into the job directory that the next attempt resumes from.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def training_command(
    *, stage: str, run_json: Path, gpus: int, nodes: int, hostfile: Path | None = None, port: int = 29500
) -> list[str]:
    if gpus <= 1:
        return [sys.executable, "-m", "training", stage, "--config", str(run_json)]
    command = ["deepspeed", "--master_port", str(port)]
    if nodes > 1:
        if hostfile is None:
            raise ValueError("a multi-node job needs a hostfile")
        command += ["--hostfile", str(hostfile), "--num_nodes", str(nodes)]
    else:
        command += ["--num_gpus", str(gpus)]
    return [*command, "--module", "training", stage, "--config", str(run_json)]


def write_hostfile(path: Path, hosts: list[str], slots_per_host: int) -> Path:
    """DeepSpeed's hostfile: one ``host slots=N`` line per node."""
    path.write_text("".join(f"{host} slots={slots_per_host}\n" for host in hosts), encoding="utf-8")
    return path


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start(command: list[str], *, job_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the stage with stdout/stderr in the job directory, in a new process group."""
    stdout = open(job_dir / "stdout.log", "ab")  # noqa: SIM115 (the child owns the descriptors)
    stderr = open(job_dir / "stderr.log", "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(  # noqa: S603 (a fixed argv, no shell)
            command,
            cwd=job_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    finally:
        stdout.close()
        stderr.close()


def stop_group(proc: subprocess.Popen[bytes], *, grace_s: float) -> int:
    """SIGTERM the whole process group, SIGKILL what is left after `grace_s`; the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # ranks the launcher left behind go too
    return proc.wait()
