"""FOR UPDATE SKIP LOCKED: two processes claiming the same queue never claim one job twice."""

from __future__ import annotations

import multiprocessing as mp
import os
import uuid

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from backend.db.models import TrainingJob
from backend.domain.enums import JobKind, JobState
from backend.services.jobs import claim_next_job, create_job, finish_job, renew_lease


def claim_all(database_url: str, queue: str, worker: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    engine = create_engine(database_url, pool_size=1)
    claimed: list[int] = []
    with Session(engine) as session:
        while True:
            lease = claim_next_job(session=session, worker_id=worker, queue=queue, lease_seconds=60)
            if lease is None:
                break
            claimed.append(lease.job_id)
    engine.dispose()
    out.put((worker, claimed))


def test_two_processes_claim_every_job_exactly_once(database_url: str) -> None:
    queue = f"race-{uuid.uuid4().hex[:8]}"
    engine = create_engine(database_url)
    with Session(engine) as session:
        ids = [
            create_job(session=session, kind=JobKind.reward, config={"i": i}, queue=queue).id
            for i in range(200)
        ]
        session.commit()
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=claim_all, args=(database_url, queue, f"w{i}", out)) for i in range(2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    first, second = results["w0"], results["w1"]
    assert not set(first) & set(second), "a job was claimed by both processes"
    assert sorted(first + second) == sorted(ids), "some job was never claimed"
    assert first and second, "both processes should have won some claims"
    with Session(engine) as session:
        rows = session.execute(
            select(TrainingJob.state, TrainingJob.attempt).where(TrainingJob.queue == queue)
        ).all()
    assert {(s, a) for s, a in rows} == {(JobState.running, 1)}
    engine.dispose()
    assert os.getpid()  # the parent never claimed anything itself


def test_a_lost_lease_fences_heartbeats_and_completion(db_session) -> None:  # type: ignore[no-untyped-def]
    queue = f"fence-{uuid.uuid4().hex[:8]}"
    create_job(session=db_session, kind=JobKind.cost, config={}, queue=queue)
    db_session.commit()
    lease = claim_next_job(session=db_session, worker_id="a", queue=queue, lease_seconds=60)
    assert lease is not None and renew_lease(session=db_session, lease=lease, lease_seconds=60)
    job = db_session.get(TrainingJob, lease.job_id)
    job.lease_token = str(uuid.uuid4())  # what the reaper + a second worker do to a stalled owner
    db_session.commit()
    assert renew_lease(session=db_session, lease=lease, lease_seconds=60) is False
    assert finish_job(session=db_session, lease=lease, state=JobState.succeeded) is False
    db_session.refresh(job)
    assert job.state == JobState.running
