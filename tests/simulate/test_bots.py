"""`python -m simulate` and `saferlhf simulate`: bot annotators over real HTTP (a `saferlhf serve`
process on the test database). With no noise they store exactly the toy world's judges' labels;
spammers show up in the quality report; every answer goes through the REST queue."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from backend.db.models import Annotation, Comparison, Response, User
from backend.domain.enums import Choice
from saferlhf_client import Client
from tests.conftest import REPO_ROOT
from tests.support.live_server import LiveServer, live_server
from tests.support.processes import PYTHON, child_env
from tests.support.seed import seed_world
from training.toyworld.generate import sample_pair
from training.toyworld.grammar import all_prompts
from training.toyworld.judges import judge_harm, judge_helpfulness

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("simulate")
    with live_server(database_url=database_url, artifacts=base, log_dir=base) as running:
        yield running


def toy_pairs(n: int, seed: int) -> list[dict[str, Any]]:
    """PKU-SafeRLHF rows of toy-world pairs, risky prompts included (labels are not imported)."""
    rng = random.Random(seed)
    prompts = all_prompts()
    rows = []
    for prompt in rng.sample(prompts, n):
        (_, a), (_, b) = sample_pair(rng, prompt)
        rows.append({"prompt": prompt.text, "response_0": a, "response_1": b, "prompt_source": "toyworld"})
    return rows


def simulate(server: LiveServer, token: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [PYTHON, "-m", "simulate", "--url", server.url, "--token", token, *args],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def expected(prompt: str, a: str, b: str) -> tuple[Choice, Choice, bool, bool]:
    help_a, help_b = judge_helpfulness(prompt, a), judge_helpfulness(prompt, b)
    harm_a, harm_b = judge_harm(prompt, a), judge_harm(prompt, b)
    helpful = Choice.equal if help_a == help_b else Choice.a if help_a > help_b else Choice.b
    harmless = (
        Choice.equal if harm_a.cost == harm_b.cost else Choice.a if harm_a.cost < harm_b.cost else Choice.b
    )
    return helpful, harmless, harm_a.is_safe, harm_b.is_safe


def test_bots_without_noise_store_exactly_the_judges_labels(server: LiveServer, database_url: str) -> None:
    world = seed_world(
        database_url, annotators=0, overlap=2, data_file=None, rows=toy_pairs(12, 1), tokens=True
    )
    token = world.tokens[world.admin_email]
    args = ["--project", str(world.project_id), "--bots", "3", "--until-empty"]
    zero = ["--noise", "0", "--position-bias", "0", "--safety-error", "0", "--ties", "equal"]
    summary = simulate(server, token, *args, *zero)
    assert summary["submitted"] == 12 * 2  # every pair got its k = 2 answers, through the queue

    engine = create_engine(database_url)
    with Session(engine) as session:
        rows = session.execute(
            select(Annotation, Comparison)
            .join(Comparison, Annotation.comparison_id == Comparison.id)
            .where(Comparison.project_id == world.project_id)
        ).all()
        assert len(rows) == 24
        unsafe_seen = 0
        for annotation, comparison in rows:
            a = session.get(Response, comparison.response_a_id)
            b = session.get(Response, comparison.response_b_id)
            assert a is not None and b is not None
            prompt = comparison.prompt.text
            helpful, harmless, a_safe, b_safe = expected(prompt, a.text, b.text)
            got = (
                annotation.helpfulness,
                annotation.harmlessness,
                annotation.a_is_safe,
                annotation.b_is_safe,
            )
            assert got == (helpful, harmless, a_safe, b_safe), (prompt, a.text, b.text)
            for safe, cats, text in (
                (a_safe, annotation.a_harm_categories, a.text),
                (b_safe, annotation.b_harm_categories, b.text),
            ):
                if not safe:
                    unsafe_seen += 1
                    verdict = judge_harm(prompt, text)
                    assert cats and len(cats) == len(verdict.categories)
        annotators = session.scalars(
            select(User.email)
            .join(Annotation, Annotation.annotator_id == User.id)
            .join(Comparison, Annotation.comparison_id == Comparison.id)
            .where(Comparison.project_id == world.project_id)
            .distinct()
        ).all()
    engine.dispose()
    assert unsafe_seen > 0  # the sample holds risky prompts answered unsafely
    assert sorted(annotators) == sorted(f"bot{i:02d}.p{world.project_id}@bots.example.com" for i in range(3))


def test_spammers_show_up_in_the_quality_report(server: LiveServer, database_url: str) -> None:
    world = seed_world(
        database_url, annotators=0, overlap=4, data_file=None, rows=toy_pairs(40, 2), tokens=True
    )
    token = world.tokens[world.admin_email]
    args = ["--project", str(world.project_id), "--bots", "5", "--spammers", "0.4", "--noise", "0.05"]
    simulate(server, token, *args, "--seed", "3")

    with Client(server.url, token) as admin:
        quality = admin.quality(world.project_id)
    by_email = {row["email"]: row for row in quality["annotators"]}
    spammers = [by_email[f"bot{i:02d}.p{world.project_id}@bots.example.com"] for i in (0, 1)]
    honest = [by_email[f"bot{i:02d}.p{world.project_id}@bots.example.com"] for i in (2, 3, 4)]

    for axis in ("helpfulness", "harmlessness"):
        rates = [float(row[f"agreement_with_others_{axis}"]["rate"]) for row in spammers + honest]
        assert max(rates[:2]) < min(rates[2:]), (axis, rates)


def test_saferlhf_simulate_runs_the_bots_with_a_token_it_issues_and_revokes(
    server: LiveServer, database_url: str
) -> None:
    world = seed_world(database_url, annotators=0, overlap=1, data_file=None, rows=toy_pairs(5, 3))
    env = child_env(DATABASE_URL=database_url, SAFERLHF_URL=server.url)
    env.pop("SAFERLHF_TOKEN", None)
    result = subprocess.run(
        [
            str(Path(PYTHON).parent / "saferlhf"),
            "simulate",
            "--as",
            world.admin_email,
            "--project",
            str(world.project_id),
            "--bots",
            "2",
            "--pairs",
            "3",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["submitted"] == 3
    engine = create_engine(database_url)
    with Session(engine) as session:
        from backend.db.models import ApiToken

        issued = session.scalars(select(ApiToken).where(ApiToken.name == "saferlhf simulate")).all()
        assert issued and all(t.revoked_at is not None for t in issued)
    engine.dispose()
    assert os.environ.get("SAFERLHF_TOKEN") is None


def test_bots_break_exact_ties_at_random_by_default_so_benign_pairs_stay_training_data(
    server: LiveServer, database_url: str
) -> None:
    # Two safe answers to a benign prompt have the same true cost: a tie on harmlessness, which
    # a snapshot would leave out of the training data if the bots answered "equal".
    rows = [r for r in toy_pairs(60, 4) if not judge_harm(r["prompt"], r["response_0"]).n_unsafe_steps][:10]
    world = seed_world(database_url, annotators=0, overlap=1, data_file=None, rows=rows, tokens=True)
    token = world.tokens[world.admin_email]
    zero = ["--noise", "0", "--position-bias", "0", "--safety-error", "0"]
    simulate(server, token, "--project", str(world.project_id), "--bots", "2", *zero)
    engine = create_engine(database_url)
    with Session(engine) as session:
        votes = session.scalars(
            select(Annotation.harmlessness)
            .join(Comparison, Annotation.comparison_id == Comparison.id)
            .where(Comparison.project_id == world.project_id)
        ).all()
    engine.dispose()
    assert len(votes) == len(rows)
    assert Choice.equal not in votes


def test_create_token_prints_a_token_that_works_over_rest(server: LiveServer, database_url: str) -> None:
    world = seed_world(database_url, annotators=0, data_file=None, rows=toy_pairs(1, 5))
    saferlhf = str(Path(PYTHON).parent / "saferlhf")
    env = child_env(DATABASE_URL=database_url)
    made = subprocess.run(
        [saferlhf, "create-token", "--email", world.admin_email, "--expires-in-days", "2"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with Client(server.url, made.stdout.strip()) as api:
        assert api.me()["email"] == world.admin_email
    missing = subprocess.run(
        [saferlhf, "create-token", "--email", "nobody@example.test"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no active user nobody@example.test"


def test_follow_keeps_annotating_pairs_imported_later_and_ctrl_c_ends_it_cleanly(
    server: LiveServer, database_url: str
) -> None:
    """`--follow` is how bots annotate a round's pairs as they arrive: pairs imported while the bots
    wait are annotated too, and SIGINT ends the run with its summary and status 0."""
    world = seed_world(
        database_url, annotators=0, overlap=1, data_file=None, rows=toy_pairs(4, 5), tokens=True
    )
    token = world.tokens[world.admin_email]
    engine = create_engine(database_url)

    def annotated() -> int:
        with Session(engine) as session:
            return len(
                session.scalars(
                    select(Annotation.id)
                    .join(Comparison, Annotation.comparison_id == Comparison.id)
                    .where(Comparison.project_id == world.project_id)
                ).all()
            )

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 120
        while annotated() < count:
            assert follower.poll() is None, follower.communicate()
            assert time.monotonic() < deadline, f"{annotated()} of {count} pairs annotated"
            time.sleep(0.5)

    follower = subprocess.Popen(
        [PYTHON, "-m", "simulate", "--url", server.url, "--token", token, "--project", str(world.project_id)]
        + ["--bots", "2", "--follow"],
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(4)
        time.sleep(2)  # the bots now find nothing and wait
        assert follower.poll() is None
        more = "".join(json.dumps(r) + "\n" for r in toy_pairs(3, 6)).encode()
        with Client(server.url, token) as admin:
            assert (
                admin.import_file(world.project_id, more, "pku_saferlhf", filename="more.jsonl").imported_rows
                == 3
            )
        wait_for(7)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
        engine.dispose()
    assert follower.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["submitted"] == 7
