"""The worker's process handling, without a broker: the stage's command line (one GPU, several,
several nodes), stopping a process group that ignores SIGTERM, and a parent free of torch."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from worker.launch import start, stop_group, training_command, write_hostfile


def test_one_gpu_runs_the_stage_module_directly(tmp_path: Path) -> None:
    command = training_command(stage="reward", run_json=tmp_path / "run.json", gpus=1, nodes=1)
    assert command == [sys.executable, "-m", "training", "reward", "--config", str(tmp_path / "run.json")]


def test_several_gpus_go_through_the_deepspeed_launcher(tmp_path: Path) -> None:
    command = training_command(stage="ppo-lag", run_json=tmp_path / "run.json", gpus=4, nodes=1, port=29600)
    assert command == [
        "deepspeed",
        "--master_port",
        "29600",
        "--num_gpus",
        "4",
        "--module",
        "training",
        "ppo-lag",
        "--config",
        str(tmp_path / "run.json"),
    ]


def test_several_nodes_use_a_hostfile(tmp_path: Path) -> None:
    hostfile = write_hostfile(tmp_path / "hostfile", ["gpu-a", "gpu-b"], slots_per_host=8)
    assert hostfile.read_text() == "gpu-a slots=8\ngpu-b slots=8\n"
    command = training_command(
        stage="sft", run_json=tmp_path / "run.json", gpus=16, nodes=2, hostfile=hostfile
    )
    assert command[:7] == [
        "deepspeed",
        "--master_port",
        "29500",
        "--hostfile",
        str(hostfile),
        "--num_nodes",
        "2",
    ]
    # The job's 16 GPUs split over the 2 nodes, whatever slots the hostfile lists: world size 16.
    assert command[7:9] == ["--num_gpus", "8"]
    assert command[-5:] == ["--module", "training", "sft", "--config", str(tmp_path / "run.json")]
    with pytest.raises(ValueError, match="10 GPUs do not split evenly over 3 nodes"):
        training_command(stage="sft", run_json=tmp_path / "run.json", gpus=10, nodes=3, hostfile=hostfile)


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    # A parent and a child that both ignore SIGTERM, like a launcher and its ranks.
    code = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "open('ready', 'w').close()\n"
        "time.sleep(300)\n"
    )
    proc = start([sys.executable, "-c", code], job_dir=tmp_path, env={"PATH": "/usr/bin:/bin"})
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
        time.sleep(0.05)
    rc = stop_group(proc, grace_s=0.5)
    assert rc == -9
    for _ in range(100):  # a killed process may take a moment to finish exiting
        if not living_members(proc.pid):
            break
        time.sleep(0.05)
    assert living_members(proc.pid) == []  # SIGKILL reached the whole group, the child too


def living_members(pgid: int) -> list[int]:
    """Processes of a group that are not zombies (a killed orphan waits to be reaped by init)."""
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True, check=False)
    living = []
    for pid in found.stdout.split():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            living.append(int(pid))
    return living


def test_a_group_that_honours_sigterm_exits_without_sigkill(tmp_path: Path) -> None:
    proc = start(["sleep", "300"], job_dir=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert stop_group(proc, grace_s=30) == -15


def test_the_worker_parent_never_imports_torch() -> None:
    """A torch operation at import time in a task module hangs Celery's prefork children."""
    code = (
        "import sys, worker.tasks, worker.celery_app, worker.runner, worker.reaper\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'deepspeed') if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_multi_node_job_without_a_hostfile_fails_before_starting(tmp_path: Path) -> None:
    from backend.config import Settings
    from backend.db.models import TrainingJob
    from backend.domain.enums import JobKind
    from worker.runner import InputError, _command

    job = TrainingJob(id=1, kind=JobKind.sft, gpus=16, nodes=2)
    with pytest.raises(InputError, match="asks for 2 nodes but this worker has no JOB_HOSTFILE"):
        _command(Settings(), job, tmp_path)
    hostfile = write_hostfile(tmp_path / "hostfile", ["a", "b"], slots_per_host=8)
    command = _command(Settings(job_hostfile=hostfile), job, tmp_path)
    assert command[:5] == ["deepspeed", "--master_port", "29500", "--hostfile", str(hostfile)]
    uneven = TrainingJob(id=2, kind=JobKind.sft, gpus=9, nodes=2)
    with pytest.raises(InputError, match="9 GPUs do not split evenly over 2 nodes"):
        _command(Settings(job_hostfile=hostfile), uneven, tmp_path)


def test_a_stage_that_runs_in_one_process_is_refused_several_gpus(tmp_path: Path) -> None:
    """Under the launcher every rank would run the whole of generate and write the same files."""
    from backend.config import Settings
    from backend.db.models import TrainingJob
    from backend.domain.enums import JobKind
    from worker.runner import InputError, _command

    for kind in (JobKind.generate, JobKind.evaluate):
        with pytest.raises(InputError, match=f"^{kind.value} runs in one process; submit it with gpus=1$"):
            _command(Settings(), TrainingJob(id=3, kind=kind, gpus=2, nodes=1), tmp_path)
    assert _command(Settings(), TrainingJob(id=4, kind=JobKind.generate, gpus=1, nodes=1), tmp_path)[1:3] == [
        "-m",
        "training",
    ]
