"""The worker's memory check before launch: a training job whose model states cannot fit the GPUs
fails at once, for good, with the planner's line and without any process started; a job that fits
runs as before. The unfittable model is a Llama-2-7B shape (config.json only, an empty weights
file): the planner sizes models from config.json, so nothing is downloaded."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings, parse_memory_size
from backend.db.models import TrainingJob
from backend.domain.enums import JobKind, JobState
from tests.support.model_shapes import LLAMA_2_7B
from tests.worker.conftest import FAST_CONFIG, Platform, training_pids
from worker import launch
from worker.runner import gpu_memory, memory_refusal

GiB = 2**30
DONE = (JobState.succeeded, JobState.failed, JobState.cancelled)
# The config the stage would run on a GPU worker: "auto" takes the GPU when there is one.
GPU_CONFIG: dict[str, Any] = {**FAST_CONFIG, "device": "auto"}
REFUSAL = re.compile(
    r"^reward cannot fit: its model states need [\d.]+ GiB per GPU under zero_stage=None "
    r"offload=none on 1 GPU\(s\) of 80\.0 GiB; zero_stage=\d offload=\w+ would fit "
    r"\(see python -m training plan\)$"
)


def finished(job: Any) -> bool:
    return job.state in DONE


def shape_only_model(folder: Path) -> Path:
    """A model directory the registry accepts (config.json and a .safetensors file) holding the 7B
    shape and no tensors: a stage that loaded it would stop at the missing tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(LLAMA_2_7B), encoding="utf-8")
    header = b"{}"  # safetensors: 8-byte little-endian header length, then the JSON header
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return folder


@pytest.fixture(scope="module")
def seven_b_id(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> int:
    from backend.domain.enums import ArtifactKind
    from backend.services.models import register_model_dir

    source = shape_only_model(tmp_path_factory.mktemp("llama-7b-shape") / "model")
    with platform.sessions() as session:
        model = register_model_dir(
            session=session,
            settings=platform.settings,
            kind=ArtifactKind.policy,
            source_dir=source,
            name="llama-2-7b shape only",
            project_id=platform.project_id,
        )
        session.commit()
        return int(model.id)


def test_a_job_that_cannot_fit_fails_at_once_with_the_planners_line_and_starts_no_process(
    platform: Platform, start_worker, seven_b_id: int
) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from backend.main import create_app

    start_worker(WORKER_GPU_MEMORY="80GB")
    inputs = {"snapshot_id": platform.snapshot_id, "base_model_id": seven_b_id}
    job_id = platform.submit({**GPU_CONFIG, "seed": 21}, inputs=inputs)
    job = platform.wait_for(job_id, finished, timeout=120, what="finished")
    assert job.state == JobState.failed and job.attempt == 1, job.error  # no retry: none can fit
    assert job.error is not None and REFUSAL.match(job.error), job.error
    job_dir = platform.artifacts / f"jobs/{job_id}"
    assert (job_dir / "run.json").is_file()  # the check reads the run as the stage would get it
    assert not (job_dir / "stderr.log").exists() and not (job_dir / "stdout.log").exists()
    assert training_pids(job_dir / "run.json") == []
    app = create_app(platform.settings)
    with TestClient(app) as api:
        shown = api.get(f"/api/v1/jobs/{job_id}", headers=platform.admin_headers).json()
    app.state.engine.dispose()
    assert shown["state"] == "failed" and shown["error"] == job.error and shown["world_size"] == 1


def test_a_job_that_fits_runs_as_before(platform: Platform, start_worker) -> None:  # type: ignore[no-untyped-def]
    start_worker(WORKER_GPU_MEMORY="80GB")
    job_id = platform.submit({**GPU_CONFIG, "seed": 22})
    job = platform.wait_for(job_id, finished, timeout=240, what="finished")
    assert job.state == JobState.succeeded and job.attempt == 1, job.error
    assert (job.current_step, job.total_steps) == (30, 30)
    assert (platform.artifacts / f"jobs/{job_id}/stderr.log").is_file()  # the stage did run


# ----------------------------------------------------------------------------- the check itself
def run_config(model: Path, **extra: Any) -> dict[str, Any]:
    return {**GPU_CONFIG, "model_name_or_path": str(model), "train_data": "data.jsonl", **extra}


def test_the_check_counts_every_gpu_of_the_job_and_its_zero_stage(tmp_path: Path) -> None:
    model = shape_only_model(tmp_path / "llama-7b")
    one = TrainingJob(kind=JobKind.reward, gpus=1, nodes=1)
    eight = TrainingJob(kind=JobKind.reward, gpus=8, nodes=2)
    refusal = memory_refusal(one, run_config(model), 80 * GiB)
    assert refusal is not None and REFUSAL.match(refusal)
    sharded = run_config(model, zero_stage=3)
    assert memory_refusal(eight, sharded, 80 * GiB) is None  # ZeRO-3 over 8 GPUs fits
    refused = memory_refusal(one, sharded, 80 * GiB)  # one GPU: nothing to shard over
    assert refused is not None and "on 1 GPU(s)" in refused


def test_nothing_is_checked_without_a_memory_for_cpu_runs_or_for_stages_that_do_not_train(
    tmp_path: Path,
) -> None:
    model = shape_only_model(tmp_path / "llama-7b")
    job = TrainingJob(kind=JobKind.reward, gpus=1, nodes=1)
    assert memory_refusal(job, run_config(model), None) is None
    assert memory_refusal(job, run_config(model, device="cpu"), 80 * GiB) is None
    generate = TrainingJob(kind=JobKind.generate, gpus=1, nodes=1)
    assert memory_refusal(generate, run_config(model), 80 * GiB) is None
    # A model directory the planner cannot read is no reason to refuse: the stage says what is wrong.
    assert memory_refusal(job, run_config(tmp_path / "nowhere"), 80 * GiB) is None


def test_worker_gpu_memory_takes_units_or_bytes_and_refuses_a_forgotten_unit() -> None:
    assert parse_memory_size("80GB") == parse_memory_size("80GiB") == parse_memory_size("80 G") == 80 * GiB
    assert parse_memory_size("24GiB") == 24 * GiB
    assert parse_memory_size("85899345920") == 80 * GiB
    assert parse_memory_size("512MB") == 512 * 2**20
    with pytest.raises(ValueError, match="did you forget the unit"):
        parse_memory_size("80")
    with pytest.raises(ValueError, match="unreadable memory size 'eighty'"):
        parse_memory_size("eighty")
    assert Settings(worker_gpu_memory="24GiB").worker_gpu_memory == 24 * GiB  # type: ignore[arg-type]
    assert Settings(worker_gpu_memory="").worker_gpu_memory is None  # type: ignore[arg-type]
    assert gpu_memory(Settings(worker_gpu_memory="40GB")) == 40 * GiB  # type: ignore[arg-type]


def test_the_probe_reports_the_smallest_visible_gpu_or_none_without_gpus() -> None:
    import torch

    launch.visible_gpu_memory.cache_clear()
    if not torch.cuda.is_available():
        assert launch.visible_gpu_memory() is None
        assert gpu_memory(Settings(worker_gpu_memory=None)) is None
        return
    smallest = min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
    assert launch.visible_gpu_memory() == smallest
    assert gpu_memory(Settings(worker_gpu_memory=None)) == smallest
