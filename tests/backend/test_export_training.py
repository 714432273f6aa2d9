"""An exported snapshot is what training reads: `training.data`'s preference datasets (helpfulness,
and harmlessness with safety labels) load its JSONL and Parquet files with the labels the
database holds; and the two copies of the PKU-SafeRLHF v1 category map (backend and training,
which may not import each other) agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.domain.enums import Choice, UserRole
from backend.domain.labels import ResponseLabel, ShownAnswer, choice_to_position
from backend.services.assignments import claim_next
from backend.services.submissions import submit_annotation
from tests.factories import make_user
from tests.factories.annotation import make_comparisons, make_project, token_headers

SAFE = ResponseLabel(True)
HARMS_SELF = ResponseLabel(False, ("self_harm", "animal_abuse"), 3)
# (more helpful, more harmless, label of response a, label of response b), in canonical a/b terms;
# each one consistent (the safer response is never the only unsafe one), so training keeps all.
PLAN = [
    (Choice.a, Choice.a, SAFE, ResponseLabel(False, ("violence",), 2)),
    (Choice.b, Choice.a, SAFE, ResponseLabel(False, ("privacy_violation",), 1)),
    (Choice.b, Choice.b, SAFE, SAFE),
    (Choice.a, Choice.b, HARMS_SELF, ResponseLabel(False, ("violence",), 1)),
]  # fmt: skip


def test_the_pku_v1_category_maps_of_backend_and_training_are_equal() -> None:
    from backend.domain import taxonomy as backend_taxonomy
    from training import taxonomy as training_taxonomy

    assert backend_taxonomy.PKU_V1_TO_BEAVERTAILS == training_taxonomy.PKU_V1_TO_BEAVERTAILS
    labels = [c["label"] for c in backend_taxonomy.default_taxonomy()]
    assert tuple(labels) == training_taxonomy.BEAVERTAILS_CATEGORIES  # the names exports carry


@pytest.fixture
def snapshot_files(client: TestClient, db_session, tmp_path):  # type: ignore[no-untyped-def]
    """A project whose four pairs got one annotation each (k = 1), exported and downloaded."""
    admin, person = make_user(db_session, role=UserRole.admin), make_user(db_session)
    project = make_project(db_session, admin, members=[person], gold_rate=0.0)
    comparisons = make_comparisons(db_session, project, len(PLAN), overlap=1)
    for n in range(len(PLAN)):
        task = claim_next(session=db_session, user=person, project_id=project.id)
        assert task is not None
        helpful, harmless, a, b = PLAN[[c.id for c in comparisons].index(task.comparison_id)]
        left, right = (a, b) if task.shown_order.value == "ab" else (b, a)
        shown = ShownAnswer(
            left,
            right,
            choice_to_position(helpful, task.shown_order),
            choice_to_position(harmless, task.shown_order),
        )
        submit_annotation(
            session=db_session,
            user=person,
            assignment_id=task.assignment_id,
            answer=shown,
            idempotency_key=str(n),
        )
    headers = token_headers(db_session, admin)
    snapshot = client.post(f"/api/v1/projects/{project.id}/snapshots", headers=headers).json()
    files = {}
    for name in ("data.jsonl", "data.parquet"):
        response = client.get(f"/api/v1/snapshots/{snapshot['id']}/files/{name}", headers=headers)
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        files[name] = folder / name
        files[name].write_bytes(response.content)
    return comparisons, project, files


def train_tokenizer(comparisons):  # type: ignore[no-untyped-def]
    from training.models.tiny import train_tokenizer as train

    texts = [t for c in comparisons for t in (c.prompt.text, c.response_a.text, c.response_b.text)]
    return train(iter(texts * 4), vocab_size=300, model_max_length=128)


def beavertails(label: ResponseLabel, project) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {str(c["label"]): c["key"] in label.harm_categories for c in project.harm_taxonomy}


@pytest.mark.parametrize("name", ["data.jsonl", "data.parquet"])
def test_training_preference_datasets_read_an_export_with_the_databases_labels(
    snapshot_files, name: str
) -> None:  # type: ignore[no-untyped-def]
    from training.data import PreferenceDataset, SafetyPreferenceDataset

    comparisons, project, files = snapshot_files
    tokenizer = train_tokenizer(comparisons)
    helpful = PreferenceDataset(str(files[name]), tokenizer, 128)
    harmless = SafetyPreferenceDataset(str(files[name]), tokenizer, 128)
    assert len(helpful) == len(harmless) == len(PLAN)  # nothing dropped as inconsistent
    for i, (comparison, (better, safer, a, b)) in enumerate(zip(comparisons, PLAN, strict=True)):
        for record in (helpful.records[i], harmless.records[i]):
            assert record.input == comparison.prompt.text
            assert (record.answer, record.other_answer) == (
                comparison.response_a.text,
                comparison.response_b.text,
            )
        assert helpful.records[i].better is (better is Choice.a)
        record = harmless.records[i]
        assert record.safer is (safer is Choice.a)
        assert (record.is_safe, record.is_other_safe) == (a.is_safe, b.is_safe)
        assert record.harm_categories == (beavertails(a, project), beavertails(b, project))
        assert record.severity == (a.severity or 0, b.severity or 0)
        item = harmless[i]
        safer_label, unsafer_label = (a, b) if safer is Choice.a else (b, a)
        assert (item["is_safer_safe"], item["is_unsafer_safe"]) == (
            safer_label.is_safe,
            unsafer_label.is_safe,
        )
    expected = tokenizer(comparisons[0].response_a.text, add_special_tokens=False)["input_ids"]
    better_ids = helpful[0]["better_input_ids"].tolist()
    assert better_ids[-len(expected) - 1 : -1] == expected  # response a, then EOS: a was better


def test_the_category_labels_of_an_export_are_the_names_training_reads(snapshot_files) -> None:  # type: ignore[no-untyped-def]
    import json

    from training.taxonomy import to_beavertails

    _, _, files = snapshot_files
    row = json.loads(Path(files["data.jsonl"]).read_text().splitlines()[0])
    assert to_beavertails(row["response_1_harm_category"]) == row["response_1_harm_category"]
