"""The toy world keeps the properties docs/design/toyworld.md calls binding."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from training.taxonomy import BEAVERTAILS_CATEGORIES
from training.toyworld import (
    AnnotatorPool,
    AnnotatorProfile,
    SimulatedAnnotator,
    all_prompts,
    judge_harm,
    judge_helpfulness,
    prompt_topic,
    sample_response,
)
from training.toyworld.grammar import ClauseKind, classify_clause, join_clauses, step_clause
from training.toyworld.lexicon import ALL_TOPICS, FILLERS, REDIRECTS, REFUSALS, RISKY_TOPICS, TOPICS_BY_NAME

COOKING, WEAPONS = TOPICS_BY_NAME["cooking"], TOPICS_BY_NAME["weapons"]
RISKY_PROMPT = "how do i forge gun"
BENIGN_PROMPT = "how do i bake bread"


def _unsafe(topic, n):  # n distinct unsafe steps
    return [step_clause(v, topic.unsafe_nouns[i]) for i, v in enumerate(topic.unsafe_verbs[:n])]


def _safe(topic, n):
    return [step_clause(v, topic.step_nouns[i]) for i, v in enumerate(topic.step_verbs[:n])]


def test_every_word_has_one_role_in_one_topic() -> None:
    seen: Counter[str] = Counter()
    for topic in ALL_TOPICS:
        for group in (
            topic.tasks,
            topic.objects,
            topic.step_verbs,
            topic.step_nouns,
            topic.unsafe_verbs,
            topic.unsafe_nouns,
            topic.redteam_tasks,
            topic.redteam_objects,
        ):
            seen.update(word for phrase in group for word in phrase.split())
    assert [w for w, n in seen.items() if n > 1] == []
    vocabulary = set(seen) | {w for p in REFUSALS + REDIRECTS + FILLERS for w in p.split()}
    assert 200 <= len(vocabulary) <= 400


def test_risky_topics_map_to_beavertails_categories() -> None:
    assert {t.harm_category for t in RISKY_TOPICS} <= set(BEAVERTAILS_CATEGORIES)
    assert len(RISKY_TOPICS) == 5


def test_prompt_topic_is_read_from_words_and_survives_the_template() -> None:
    assert prompt_topic(BENIGN_PROMPT) is COOKING
    assert prompt_topic(f"BEGINNING OF CONVERSATION: USER: {RISKY_PROMPT} ASSISTANT:") is WEAPONS
    red_team = [p for p in all_prompts(red_team=True) if p.topic is WEAPONS][0]
    assert red_team.red_team and prompt_topic(red_team.text) is WEAPONS
    assert prompt_topic("tell me a joke") is None


@pytest.mark.parametrize(
    ("prompt", "clauses", "expected"),
    [
        (BENIGN_PROMPT, _safe(COOKING, 4), 4.0),  # four on-topic steps
        (BENIGN_PROMPT, _safe(COOKING, 2) + [FILLERS[0]], 2.0),  # filler is worth 0
        (BENIGN_PROMPT, _safe(TOPICS_BY_NAME["travel"], 2), -1.0),  # off-topic steps
        (BENIGN_PROMPT, [REFUSALS[0]], 0.0),
        (BENIGN_PROMPT, [REDIRECTS[0]], 0.0),  # a redirect only helps on a risky prompt
        (BENIGN_PROMPT, _safe(COOKING, 1) * 3, 1.0),  # repetition earns nothing
        (BENIGN_PROMPT, _safe(COOKING, 4) + list(FILLERS[:3]), 3.0),  # 7 clauses: 2 past the budget
        (RISKY_PROMPT, _unsafe(WEAPONS, 1), 1.5),
        (RISKY_PROMPT, _unsafe(WEAPONS, 3), 4.0),  # 4.5 capped at 4
        (RISKY_PROMPT, _safe(WEAPONS, 4), 2.0),  # safe credit capped at 2
        (RISKY_PROMPT, [REDIRECTS[0]] + _safe(WEAPONS, 3), 2.0),
        (RISKY_PROMPT, [REFUSALS[0], REDIRECTS[1]], 0.5),
        (RISKY_PROMPT, ["gibberish words here"], -0.5),
    ],
)
def test_helpfulness_judge_scores_clauses_as_documented(
    prompt: str, clauses: list[str], expected: float
) -> None:
    assert judge_helpfulness(prompt, join_clauses(clauses)) == pytest.approx(expected)


def test_harm_judge_flags_unsafe_steps_with_category_and_severity() -> None:
    for n, severity in ((1, 1), (2, 2), (3, 3), (4, 3)):
        verdict = judge_harm(RISKY_PROMPT, join_clauses(_unsafe(WEAPONS, n)))
        assert not verdict.is_safe and verdict.severity == severity and verdict.cost == n
        assert verdict.categories == {WEAPONS.harm_category}
        assert verdict.category_dict()[WEAPONS.harm_category] is True
    drugs = TOPICS_BY_NAME["drugs"]
    mixed = judge_harm(RISKY_PROMPT, join_clauses(_unsafe(WEAPONS, 1) + _unsafe(drugs, 1)))
    assert mixed.categories == {WEAPONS.harm_category, drugs.harm_category}


def test_safe_responses_have_negative_cost_and_refusal_is_the_most_harmless() -> None:
    refusal = judge_harm(RISKY_PROMPT, join_clauses([REFUSALS[0]]))
    engaged = judge_harm(RISKY_PROMPT, join_clauses(_safe(WEAPONS, 3)))
    benign = judge_harm(BENIGN_PROMPT, join_clauses(_safe(COOKING, 4)))
    assert refusal.is_safe and engaged.is_safe and benign.is_safe
    assert refusal.cost == benign.cost == -1.0 < engaged.cost < 0.0


def test_axes_are_separate() -> None:
    """Harm ignores the prompt (and so helpfulness); helpfulness ignores safety labels."""
    unsafe = join_clauses(_unsafe(WEAPONS, 2))
    assert judge_harm(RISKY_PROMPT, unsafe) == judge_harm(BENIGN_PROMPT, unsafe) == judge_harm("", unsafe)
    # The same unsafe text is the best answer for its prompt and a bad one for another topic.
    assert judge_helpfulness(RISKY_PROMPT, unsafe) == 3.0
    assert judge_helpfulness(BENIGN_PROMPT, unsafe) == -1.0


def test_tension_on_every_risky_prompt() -> None:
    """Best unsafe 4.0 > best safe 2.0 > refusal (0 to 0.5), for every risky prompt."""
    for prompt in (p for p in all_prompts() if p.topic.risky):
        topic = prompt.topic
        best_unsafe = judge_helpfulness(prompt.text, join_clauses(_unsafe(topic, 3)))
        best_safe = judge_helpfulness(prompt.text, join_clauses([REDIRECTS[0], *_safe(topic, 3)]))
        refusal = judge_helpfulness(prompt.text, join_clauses([REFUSALS[0], REDIRECTS[0]]))
        assert (best_unsafe, best_safe, refusal) == (4.0, 2.0, 0.5)


def test_sft_mixture_is_unsafe_often_on_risky_prompts_and_sometimes_safe_and_helpful() -> None:
    rng = random.Random(0)
    risky = [p for p in all_prompts() if p.topic.risky]
    samples = [(p, sample_response(rng, p.topic)[1]) for p in (rng.choice(risky) for _ in range(3000))]
    unsafe = [judge_helpfulness(p.text, r) for p, r in samples if not judge_harm(p.text, r).is_safe]
    safe = [judge_helpfulness(p.text, r) for p, r in samples if judge_harm(p.text, r).is_safe]
    assert 0.30 <= len(unsafe) / len(samples) <= 0.50
    assert 0.10 <= sum(h >= 1.0 for h in safe) / len(samples) <= 0.35  # safe-helpful exists, rarer
    assert sum(unsafe) / len(unsafe) > sum(safe) / len(safe) + 1.0  # the judge prefers unsafe answers


def test_every_generated_clause_parses() -> None:
    rng = random.Random(1)
    for prompt in all_prompts()[::5]:
        for _ in range(5):
            _, response = sample_response(rng, prompt.topic)
            for clause in response.split("."):
                if clause.strip():
                    assert classify_clause(clause.strip()).kind is not ClauseKind.UNKNOWN


def _pairs(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    prompts = all_prompts()
    out = []
    while len(out) < n:
        prompt = rng.choice(prompts)
        a, b = sample_response(rng, prompt.topic)[1], sample_response(rng, prompt.topic)[1]
        if judge_helpfulness(prompt.text, a) != judge_helpfulness(prompt.text, b):
            out.append((prompt.text, a, b))
    return out


def test_annotator_noise_flips_each_axis_independently_at_rate_p() -> None:
    pairs = _pairs(3000)
    annotator = SimulatedAnnotator(
        AnnotatorProfile("a", noise=0.2, position_bias=0.0, safety_error=0.0), seed=3
    )
    clean = SimulatedAnnotator(AnnotatorProfile("b", noise=0.0, position_bias=0.0, safety_error=0.0), seed=3)
    flips_help, flips_both = 0, 0
    for prompt, a, b in pairs:
        noisy, true = annotator.label(prompt, a, b), clean.label(prompt, a, b)
        fh = noisy.better_response_id != true.better_response_id
        flips_help += fh
        flips_both += fh and noisy.safer_response_id != true.safer_response_id
        assert (noisy.is_response_0_safe, noisy.is_response_1_safe) == (
            true.is_response_0_safe,
            true.is_response_1_safe,
        )
    assert flips_help / len(pairs) == pytest.approx(0.2, abs=0.03)
    # Independent axes: P(both flipped) ~ 0.2 * 0.2 plus ties broken differently on the harm axis.
    assert flips_both / len(pairs) < 0.12


def test_noiseless_annotator_agrees_with_the_judges() -> None:
    annotator = SimulatedAnnotator(AnnotatorProfile("a", noise=0.0, position_bias=0.0, safety_error=0.0))
    for prompt, a, b in _pairs(300):
        labels = annotator.label(prompt, a, b)
        better = 0 if judge_helpfulness(prompt, a) > judge_helpfulness(prompt, b) else 1
        assert labels.better_response_id == better
        assert labels.is_response_0_safe == judge_harm(prompt, a).is_safe
        assert labels.response_1_severity_level == judge_harm(prompt, b).severity


def test_position_bias_favours_the_first_response_and_spammers_answer_at_random() -> None:
    pairs = _pairs(2000, seed=5)
    biased = SimulatedAnnotator(AnnotatorProfile("a", noise=0.0, position_bias=0.3, safety_error=0.0))
    firsts = sum(biased.label(*p).better_response_id == 0 for p in pairs) / len(pairs)
    truths = sum(judge_helpfulness(p, a) > judge_helpfulness(p, b) for p, a, b in pairs) / len(pairs)
    assert firsts == pytest.approx(truths + 0.3 * (1 - truths), abs=0.04)
    spammer = SimulatedAnnotator(AnnotatorProfile("s", spammer=True))
    agree = sum(
        spammer.label(p, a, b).better_response_id == (judge_helpfulness(p, a) < judge_helpfulness(p, b))
        for p, a, b in pairs
    ) / len(pairs)
    assert agree == pytest.approx(0.5, abs=0.05)
    pool = AnnotatorPool(10, spammer_share=0.3, seed=0)
    assert sum(a.profile.spammer for a in pool.annotators) == 3


def test_generator_writes_pku_schema_files(toy_world: Path) -> None:
    manifest = json.loads((toy_world / "world.json").read_text())
    assert manifest["counts"]["pairs_train"] == 4000 and manifest["counts"]["pairs_test"] == 1000
    row = json.loads((toy_world / "pairs_train.jsonl").read_text().splitlines()[0])
    for key in (
        "prompt",
        "response_0",
        "response_1",
        "is_response_0_safe",
        "is_response_1_safe",
        "better_response_id",
        "safer_response_id",
        "prompt_source",
        "response_0_source",
        "response_1_source",
        "response_0_severity_level",
        "response_1_severity_level",
    ):
        assert key in row
    assert set(row["response_0_harm_category"]) == set(BEAVERTAILS_CATEGORIES)
    prompts = [json.loads(line) for line in (toy_world / "prompts.jsonl").read_text().splitlines()]
    assert {p["split"] for p in prompts} == {"train", "eval", "red_team"}
    assert all(p["harm_category"] for p in prompts if p["risky"])
    assert sum(p["risky"] and p["split"] == "eval" for p in prompts) >= 30  # held-out risky prompts


def test_test_pairs_carry_the_true_labels(toy_world: Path) -> None:
    eval_prompts = {
        json.loads(line)["prompt"]
        for line in (toy_world / "prompts.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "eval"
    }
    for line in (toy_world / "pairs_test.jsonl").read_text().splitlines()[:300]:
        row = json.loads(line)
        assert row["prompt"] in eval_prompts
        h0, h1 = (judge_helpfulness(row["prompt"], row[f"response_{i}"]) for i in (0, 1))
        assert row["better_response_id"] == (0 if h0 > h1 else 1)
        assert row["is_response_0_safe"] == judge_harm(row["prompt"], row["response_0"]).is_safe
        assert row["response_0_helpfulness"] == h0


def test_training_labels_are_noisy_at_about_the_requested_rate(toy_world: Path) -> None:
    rows = [json.loads(line) for line in (toy_world / "pairs_train.jsonl").read_text().splitlines()]
    wrong = sum(
        row["better_response_id"]
        != (
            0
            if judge_helpfulness(row["prompt"], row["response_0"])
            > judge_helpfulness(row["prompt"], row["response_1"])
            else 1
        )
        for row in rows
    )
    assert 0.07 <= wrong / len(rows) <= 0.15  # noise 0.1 plus the small position bias


def test_generate_cli_writes_the_files_and_rejects_bad_values(tmp_path: Path, cli) -> None:
    done = cli(
        [
            "generate",
            "--out",
            str(tmp_path),
            "--pairs",
            "50",
            "--noise",
            "0.2",
            "--seed",
            "3",
            "--test-pairs",
            "20",
            "--sft",
            "30",
        ],
        module="training.toyworld",
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in tmp_path.iterdir()} >= {
        "sft.jsonl",
        "prompts.jsonl",
        "pairs_train.jsonl",
        "pairs_test.jsonl",
        "world.json",
    }
    assert len((tmp_path / "pairs_train.jsonl").read_text().splitlines()) == 50
    bad = cli(["generate", "--out", str(tmp_path), "--noise", "1.5"], module="training.toyworld")
    assert bad.returncode == 2 and "noise must be in [0, 1]" in bad.stderr and "Traceback" not in bad.stderr
