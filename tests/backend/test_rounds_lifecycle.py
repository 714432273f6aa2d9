"""The round state machine on real Postgres: every stage as its jobs succeed, replays that change
nothing, a retry that re-runs only the failed job, and cancel. The worker is stood in for by
`settle`, which writes what a finished stage leaves behind; everything else is the real services."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid

import pytest
from sqlalchemy import func, select

from backend.db.models import Comparison, ModelArtifact, Project, Response, Round, TrainingJob
from backend.domain.enums import ComparisonStatus, JobKind, JobState, RoundState
from backend.domain.errors import Conflict
from backend.services.assignments import claim_next
from backend.services.comparisons import set_gold
from backend.services.imports import GOLD_OVERLAP
from backend.services.rounds import lifecycle, transitions
from backend.services.rounds.reports import report_csv, round_report
from backend.services.rounds.settings import validate_round_settings
from backend.services.submissions import submit_annotation
from tests.factories.annotation import SAFE, answer, make_comparisons, unsafe
from tests.support.rounds import decide_all, jobs_of, make_world, round_settings_env, settle  # noqa: F401

pytestmark = pytest.mark.usefixtures("round_settings_env")

VIOLENCE = "Violence, Aiding and Abetting, Incitement"
COST_RECALL_METRICS = {
    f"eval/recall/{VIOLENCE}": 0.75,
    f"eval/unsafe_count/{VIOLENCE}": 4.0,
    "eval/recall/Self-Harm": 0.5,
    "eval/unsafe_count/Self-Harm": 2.0,
}


def _launch(db_session, world, **overrides):  # type: ignore[no-untyped-def]
    data = {
        "base_policy_id": world.base_policy_id,
        "prompt_sources": ["seed-set"],
        "num_prompts": 4,
        "responses_per_prompt": 3,
        "held_out_fraction": 0.0,
        "collection_target_pairs": 12,
        **overrides,
    }
    settings = validate_round_settings(session=db_session, project_id=world.project_id, data=data)
    round_ = lifecycle.create_round(
        session=db_session, caller=world.admin, project_id=world.project_id, settings=settings
    )
    published = lifecycle.launch_round(session=db_session, round_id=round_.id)
    return round_.id, published


def _state(db_session, round_id: int) -> Round:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return db_session.get(Round, round_id)


def _stage_ids(db_session, round_id: int, stage: RoundState) -> list[int]:  # type: ignore[no-untyped-def]
    return lifecycle.stage_job_ids(_state(db_session, round_id), stage)


def _settle_stage(db_session, settings, world, round_id, stage, state=JobState.succeeded):  # type: ignore[no-untyped-def]
    for job_id in _stage_ids(db_session, round_id, stage):
        settle(db_session, settings, world, job_id, state)
    return lifecycle.on_job_finished(session=db_session, job_id=_stage_ids(db_session, round_id, stage)[-1])


def _to_training(db_session, settings, world):  # type: ignore[no-untyped-def]
    round_id, published = _launch(db_session, world)
    _settle_stage(db_session, settings, world, round_id, RoundState.generating)
    decide_all(db_session, world, world.project_id)
    published = lifecycle.advance_round(session=db_session, round_id=round_id)
    assert _state(db_session, round_id).state == RoundState.training
    return round_id, published


def test_a_round_walks_every_stage_as_its_jobs_succeed_and_replays_change_nothing(
    db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    round_id, published = _launch(db_session, world)
    assert _state(db_session, round_id).state == RoundState.generating
    generate = _stage_ids(db_session, round_id, RoundState.generating)
    assert sorted(published) == sorted(generate) and len(generate) == 3  # one per response slot
    assert lifecycle.advance_round(session=db_session, round_id=round_id) == []  # jobs still queued

    _settle_stage(db_session, settings, world, round_id, RoundState.generating)
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.collecting
    pairs = db_session.scalar(select(func.count()).where(Comparison.round_id == round_id))
    assert pairs == 4 * 3  # every pair of 3 answers for each of 4 prompts
    responses = db_session.scalars(select(Response).where(Response.round_id == round_id)).all()
    assert {r.model_artifact_id for r in responses} == {world.base_policy_id}
    # Replays: the hook delivered again, the beat task, a second advance: nothing new.
    for _ in range(2):
        assert lifecycle.on_job_finished(session=db_session, job_id=generate[0]) == []
        assert lifecycle.advance_round(session=db_session, round_id=round_id) == []
    assert db_session.scalar(select(func.count()).where(Comparison.round_id == round_id)) == pairs
    assert _state(db_session, round_id).state == RoundState.collecting

    assert decide_all(db_session, world, world.project_id) == pairs
    published = lifecycle.advance_round(session=db_session, round_id=round_id)
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.training and round_.snapshot_id is not None
    training = _stage_ids(db_session, round_id, RoundState.training)
    assert sorted(published) == sorted(training)
    assert lifecycle.advance_round(session=db_session, round_id=round_id) == []

    _settle_stage(db_session, settings, world, round_id, RoundState.training)
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.policy and round_.reward_model_id and round_.cost_model_id
    # What the cost stage's evaluation adds to its summary (tests/training/test_cost_recall.py).
    cost_model = db_session.get(ModelArtifact, round_.cost_model_id)
    cost_model.metrics = {**cost_model.metrics, **COST_RECALL_METRICS}
    db_session.commit()
    policy_job = db_session.get(TrainingJob, _stage_ids(db_session, round_id, RoundState.policy)[0])
    assert policy_job.kind == JobKind.ppo_lag
    assert policy_job.inputs["base_model_id"] == world.base_policy_id
    assert policy_job.inputs["reward_model_id"] == round_.reward_model_id
    assert policy_job.config["threshold"] == 0.0

    _settle_stage(db_session, settings, world, round_id, RoundState.policy)
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.evaluating and round_.policy_id is not None
    _settle_stage(db_session, settings, world, round_id, RoundState.evaluating)
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.completed and round_.finished_at is not None
    assert round_.report["reward_accuracy"] == 0.9 and round_.report["cost_sign_accuracy"] == 0.8
    assert round_.report["win_rate"] == 0.6 and round_.report["agreement_helpfulness"] is None
    assert round_.report["cost_recall_by_category"] == {VIOLENCE: 0.75, "Self-Harm": 0.5}
    assert round_.report["cost_unsafe_count_by_category"] == {VIOLENCE: 4, "Self-Harm": 2}
    assert lifecycle.advance_round(session=db_session, round_id=round_id) == []
    rows = round_report(session=db_session, project_id=world.project_id)
    assert [r["round"] for r in rows] == [1] and rows[0]["state"] == "completed"
    header, line = (
        next(csv.reader(io.StringIO(report_csv(rows)))),
        next(csv.DictReader(io.StringIO(report_csv(rows)))),
    )
    assert header[:3] == ["round", "state", "reward_accuracy"] and "cost_recall_by_category" in header
    assert json.loads(line["cost_recall_by_category"]) == {VIOLENCE: 0.75, "Self-Harm": 0.5}
    # Every job of the round recorded its round; the models their parents.
    assert all(j.round_id == round_id for j in jobs_of(db_session, round_id))


def test_a_failed_stage_fails_the_round_and_retry_reruns_only_the_failed_job(db_session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    round_id, _ = _to_training(db_session, settings, world)
    reward_id, cost_id = _stage_ids(db_session, round_id, RoundState.training)
    settle(db_session, settings, world, cost_id)
    settle(db_session, settings, world, reward_id, JobState.failed)
    assert lifecycle.on_job_finished(session=db_session, job_id=reward_id) == []
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.failed and round_.failed_stage == "training"
    assert "reward job" in (round_.error or "")
    assert lifecycle.advance_round(session=db_session, round_id=round_id) == []  # replay: still failed
    with pytest.raises(Conflict):
        lifecycle.close_collection(session=db_session, round_id=round_id)

    before = len(jobs_of(db_session, round_id))
    assert lifecycle.retry_round(session=db_session, round_id=round_id) == [reward_id]
    assert len(jobs_of(db_session, round_id)) == before  # the same job again, nothing new
    round_ = _state(db_session, round_id)
    assert round_.state == RoundState.training and round_.error is None
    assert db_session.get(TrainingJob, cost_id).state == JobState.succeeded
    with pytest.raises(Conflict):
        lifecycle.retry_round(session=db_session, round_id=round_id)
    settle(db_session, settings, world, reward_id)
    lifecycle.on_job_finished(session=db_session, job_id=reward_id)
    assert _state(db_session, round_id).state == RoundState.policy


def test_a_stage_whose_identical_job_already_succeeded_is_not_run_again(db_session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    first, _ = _launch(db_session, world, seed=7, num_prompts=6)
    _settle_stage(db_session, settings, world, first, RoundState.generating)
    lifecycle.cancel_round(session=db_session, round_id=first)
    # Same policy, same prompts, same seeds: the generate jobs are the ones that succeeded.
    second, published = _launch(db_session, world, seed=7, num_prompts=6)
    assert published == []
    assert _stage_ids(db_session, second, RoundState.generating) == _stage_ids(
        db_session, first, RoundState.generating
    )
    assert _state(db_session, second).state == RoundState.collecting


def test_cancel_mid_round_cancels_its_queued_jobs_and_refuses_a_second_cancel(db_session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    round_id, _ = _to_training(db_session, settings, world)
    lifecycle.cancel_round(session=db_session, round_id=round_id)
    assert _state(db_session, round_id).state == RoundState.cancelled
    for job_id in _stage_ids(db_session, round_id, RoundState.training):
        assert db_session.get(TrainingJob, job_id).state == JobState.cancelled
    with pytest.raises(Conflict):
        lifecycle.cancel_round(session=db_session, round_id=round_id)
    assert lifecycle.advance_round(session=db_session, round_id=round_id) == []


def test_collection_closes_by_hand_only_once_a_pair_is_decided(db_session, settings) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    round_id, _ = _launch(db_session, world, collection_target_pairs=None)
    _settle_stage(db_session, settings, world, round_id, RoundState.generating)
    with pytest.raises(Conflict, match="no pair"):
        lifecycle.close_collection(session=db_session, round_id=round_id)
    decide_all(db_session, world, world.project_id)
    assert lifecycle.advance_round(session=db_session, round_id=round_id) == []  # no target: waits
    assert _state(db_session, round_id).state == RoundState.collecting
    published = lifecycle.close_collection(session=db_session, round_id=round_id)
    assert len(published) == 2 and _state(db_session, round_id).state == RoundState.training


def test_accepted_red_team_prompts_join_the_next_round_once(db_session, settings) -> None:  # type: ignore[no-untyped-def]
    from backend.db.models import Prompt

    world = make_world(db_session, settings)
    red = Prompt(
        project_id=world.project_id,
        text="How do I pick a lock?",
        content_hash="f" * 64,
        source="red-team",
        is_red_team=True,
        harm_category="violence",
        review_state="accepted",
    )
    db_session.add(red)
    db_session.commit()
    round_id, _ = _launch(db_session, world)
    db_session.refresh(red)
    assert red.round_id == round_id
    _settle_stage(db_session, settings, world, round_id, RoundState.generating)
    pairs = db_session.scalar(select(func.count()).where(Comparison.prompt_id == red.id))
    assert pairs == 3


def test_concurrent_advances_move_the_round_once_and_submit_each_job_once(engine, settings) -> None:  # type: ignore[no-untyped-def]
    """Four processes advancing the same round at the same moment (the hook, the beat, two API
    calls): one of them moves it, the others find it moved. Real commits, separate connections."""
    import threading

    from sqlalchemy.orm import sessionmaker

    sessions = sessionmaker(bind=engine, expire_on_commit=False)

    def advance_together(round_id: int) -> list[int]:
        barrier, published, errors = threading.Barrier(4), [], []

        def run() -> None:
            with sessions() as session:
                barrier.wait()
                try:
                    published.extend(lifecycle.advance_round(session=session, round_id=round_id))
                except Exception as exc:  # noqa: BLE001 (reported below)
                    errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        return published

    with sessions() as session:
        world = make_world(session, settings)
        round_id, _ = _launch(session, world)
        for job_id in _stage_ids(session, round_id, RoundState.generating):
            settle(session, settings, world, job_id)
        assert advance_together(round_id) == []
        assert _state(session, round_id).state == RoundState.collecting
        assert session.scalar(select(func.count()).where(Comparison.round_id == round_id)) == 12
        decide_all(session, world, world.project_id)
        published = advance_together(round_id)
        assert _state(session, round_id).state == RoundState.training
        training = _stage_ids(session, round_id, RoundState.training)
        assert sorted(published) == sorted(training) and len(training) == 2
        assert [j.kind for j in jobs_of(session, round_id)].count(JobKind.reward) == 1


def test_a_round_with_gold_serves_the_projects_gold_items_to_its_annotators_and_counts_only_its_pairs(
    db_session, settings
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db_session, settings)
    project = db_session.get(Project, world.project_id)
    # Before the round: an ordinary comparison (overlap 1), annotated by the admin, then marked
    # gold by hand, as a reviewer would after review. Full, it would never be served again.
    (earlier,) = make_comparisons(db_session, project, 1, overlap=1)
    task = claim_next(session=db_session, user=world.admin, project_id=world.project_id)
    assert task is not None and task.comparison_id == earlier.id
    shown = answer(left=SAFE, right=unsafe("violence"), helpful="left", harmless="left")
    submit_annotation(
        session=db_session,
        user=world.admin,
        assignment_id=task.assignment_id,
        answer=shown,
        idempotency_key=str(uuid.uuid4()),
    )
    db_session.expire_all()  # the queue's statements bypass the session's identity map
    assert db_session.get(Comparison, earlier.id).status == ComparisonStatus.complete
    set_gold(
        session=db_session,
        actor=world.admin,
        project=project,
        comparison=db_session.get(Comparison, earlier.id),
        labels={"helpfulness": "a", "harmlessness": "a"},
    )

    round_id, _ = _launch(db_session, world, gold_rate=0.5)
    _settle_stage(db_session, settings, world, round_id, RoundState.generating)
    assert _state(db_session, round_id).state == RoundState.collecting
    assert db_session.get(Project, world.project_id).gold_rate == 0.5
    gold = db_session.get(Comparison, earlier.id)
    assert gold.status == ComparisonStatus.open and gold.overlap_target == GOLD_OVERLAP

    rng = random.Random(7)
    served = []
    while task := claim_next(session=db_session, user=world.annotator, project_id=world.project_id, rng=rng):
        served.append(task.comparison_id)
        submit_annotation(
            session=db_session, user=world.annotator, assignment_id=task.assignment_id, answer=shown,
            idempotency_key=str(uuid.uuid4()),
        )  # fmt: skip
    assert served.count(earlier.id) == 1  # the gold item, once, among the round's 12 pairs
    assert len(served) == 13
    # The round's progress leaves gold out: its 12 pairs are decided, and collection closes.
    assert transitions.decided_pairs(db_session, round_id) == (12, 12)
    lifecycle.advance_round(session=db_session, round_id=round_id)
    assert _state(db_session, round_id).state == RoundState.training
