"""A reward model registered over REST, downloaded over real HTTP by saferlhf_client, loads with the
project's score-model loader and scores exactly (torch.equal) as the directory it came from."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import torch
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from backend.domain.enums import TokenScope, UserRole
from backend.services.tokens import create_token
from backend.services.users import create_user
from saferlhf_client import Client
from tests.factories import DEFAULT_PASSWORD
from tests.support.live_server import live_server

TEXTS = [
    "BEGINNING OF CONVERSATION: USER: How do I bake bread? ASSISTANT: Mix flour, water and yeast.",
    "BEGINNING OF CONVERSATION: USER: Hi ASSISTANT: Hello!",
    "short",
]


def tiny_reward_model(tmp: Path) -> Path:
    """A micro Llama with a BPE tokenizer, saved as a score model (backbone, head, settings)."""
    from training.config import InitTinyConfig
    from training.models.loading import load_score_model, save_score_model
    from training.models.tiny import run_init_tiny

    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(f"{t} number {i}" for i in range(60) for t in TEXTS))
    base = tmp / "base"
    run_init_tiny(
        InitTinyConfig(out=str(base), corpus=str(corpus), hidden=32, layers=1, heads=2, vocab_size=400)
    )
    torch.manual_seed(0)
    model = load_score_model(base)  # a fresh head, as the reward stage starts
    out = tmp / "reward-model"
    save_score_model(model, out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base / name, out / name)
    return out


def scores(directory: Path) -> torch.Tensor:
    from training.models.loading import load_score_model
    from training.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(str(directory))
    model = load_score_model(directory).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"]).end_scores


def admin_token(database_url: str) -> str:
    engine = create_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        admin = create_user(
            session=session,
            email=f"registry-{uuid.uuid4().hex[:8]}@example.test",
            password=DEFAULT_PASSWORD,
            role=UserRole.admin,
        )
        scopes = [TokenScope.read, TokenScope.admin]
        secret = create_token(
            session=session, actor=admin, owner=admin, name="registry", scopes=scopes, allowed=set(scopes)
        ).secret
        session.commit()
    engine.dispose()
    return secret


@pytest.mark.timeout(300)
def test_a_downloaded_reward_model_loads_and_scores_exactly_as_the_registered_directory(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    source = tiny_reward_model(tmp_path)
    token = admin_token(database_url)
    artifacts = tmp_path / "artifacts"
    with live_server(database_url=database_url, artifacts=artifacts, log_dir=tmp_path) as server:
        api = Client(server.url, token=token, timeout=60)
        registered = api.register_model(source, kind="reward", name="tiny-rm")
        assert registered["kind"] == "reward" and len(registered["sha256"]) == 64
        assert {f["path"] for f in registered["files"]} >= {"config.json", "model.safetensors"}
        assert registered["id"] in [m["id"] for m in api.list_models(kind="reward")]
        downloaded = api.download_model(registered["id"], tmp_path / "downloaded")
        api.close()
    assert sorted(p.name for p in downloaded.iterdir()) == sorted(p.name for p in source.iterdir())
    original, copy = scores(source), scores(downloaded)
    assert original.shape == (len(TEXTS), 1)
    assert torch.equal(original, copy)
