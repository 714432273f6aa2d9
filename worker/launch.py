"""Starting and stopping a stage's subprocess (torch-free: the worker parent never imports torch).

One GPU: ``python -m training STAGE --config run.json``. Several: the ``deepspeed`` launcher, with
a hostfile when the job spans nodes. A job's ``gpus`` counts the GPUs of all its nodes together,
split evenly over them, so the run's world size is ``gpus`` whatever slots the hostfile lists.
The process gets its own process group (start_new_session), so a stop signal reaches the launcher
and every rank it started, and it is killed if the worker process that started it dies
(PR_SET_PDEATHSIG), so a kill -9'd worker leaves no orphan writing into the job directory that the
next attempt resumes from.

The memory of this machine's GPUs, which the pre-launch memory check needs, is read by torch in a
short child process (:func:`visible_gpu_memory`), once per worker process.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
logger = logging.getLogger(__name__)
# Run in a child: CUDA initialised in the worker parent would break Celery's forked pool children.
GPU_PROBE = (
    "import torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "print(min((torch.cuda.get_device_properties(i).total_memory for i in range(n)), default=0))\n"
)
GPU_PROBE_TIMEOUT_S = 180.0


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
        if gpus % nodes:
            raise ValueError(f"{gpus} GPUs do not split evenly over {nodes} nodes")
        # Without --num_gpus the launcher would start every slot the hostfile lists on each host.
        command += ["--num_gpus", str(gpus // nodes)]
    else:
        command += ["--num_gpus", str(gpus)]
    return [*command, "--module", "training", stage, "--config", str(run_json)]


def _gpu_devices_present() -> bool:
    """NVIDIA or AMD device nodes: without them torch cannot see a GPU, and the probe is skipped."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/dev/kfd")


@functools.cache
def visible_gpu_memory() -> int | None:
    """Bytes of memory of the smallest GPU this worker's stages can see (what
    ``torch.cuda.get_device_properties(i).total_memory`` reports); None on a machine without GPUs,
    or when torch cannot tell (logged: the stage's own check still runs on its GPU)."""
    if not _gpu_devices_present():
        return None
    try:
        done = subprocess.run(  # noqa: S603 (a fixed argv, no shell)
            [sys.executable, "-c", GPU_PROBE],
            capture_output=True,
            text=True,
            timeout=GPU_PROBE_TIMEOUT_S,
            check=True,
        )
        memory = int(done.stdout.split()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        logger.warning("could not read the GPUs' memory (%s); jobs start without the memory check", exc)
        return None
    return memory or None


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
