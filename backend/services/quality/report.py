"""The project quality report behind the admin QC page and GET /projects/{id}/quality.

Agreement figures use ordinary (non-gold) comparisons: gold items are seen by many annotators on
purpose and would dominate them. Rounds are the comparisons' rounds ("none" for comparisons
imported outside a round); "all" pools every round.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.models import Project, Round, User
from backend.services.quality.aggregation import Aggregate, aggregate, disagreement
from backend.services.quality.agreement import Agreement, agreement
from backend.services.quality.annotators import AnnotatorStats, annotator_stats
from backend.services.quality.votes import Vote, by_comparison, latest_adjudications, load_gold, load_votes

AGREEMENT_AXES = ("helpfulness", "harmlessness", "safety")


@dataclass(frozen=True)
class AgreementRow:
    round_label: str
    axis: str
    result: Agreement


@dataclass(frozen=True)
class AnnotatorRow:
    user_id: int
    email: str
    display_name: str
    stats: AnnotatorStats


@dataclass(frozen=True)
class QualityReport:
    project_id: int
    votes: int
    comparisons_with_votes: int
    agreement: list[AgreementRow]
    annotators: list[AnnotatorRow]
    disagreements: int
    adjudicated: int
    ties: dict[str, int]


def _units(votes: list[Vote], axis: str) -> list[list[object]]:
    units: list[list[object]] = []
    for group in by_comparison(votes).values():
        if axis == "safety":
            units.append([v.answer.a.is_safe for v in group])
            units.append([v.answer.b.is_safe for v in group])
        else:
            units.append([v.choice(axis).value for v in group])
    return units


def agreement_rows(session: Session, votes: list[Vote]) -> list[AgreementRow]:
    ordinary = [v for v in votes if not v.is_gold]
    numbers = dict(session.execute(select(Round.id, Round.number)).all()) if ordinary else {}
    rounds: dict[str, list[Vote]] = {"all": ordinary}
    for vote in ordinary:
        label = f"round {numbers.get(vote.round_id, '?')}" if vote.round_id is not None else "none"
        rounds.setdefault(label, []).append(vote)
    if set(rounds) == {"all", "none"}:
        del rounds["none"]  # no rounds yet: the per-round rows would repeat "all"
    return [
        AgreementRow(label, axis, agreement(_units(group, axis)))
        for label, group in rounds.items()
        for axis in AGREEMENT_AXES
    ]


def weights_of(stats: dict[int, AnnotatorStats]) -> dict[int, float]:
    return {uid: s.weight for uid, s in stats.items()}


def aggregates(session: Session, *, project: Project, votes: list[Vote] | None = None) -> list[Aggregate]:
    votes = load_votes(session, project_id=project.id) if votes is None else votes
    stats = annotator_stats(votes, load_gold(session, project_id=project.id))
    adjudications = latest_adjudications(session, project_id=project.id)
    weights = weights_of(stats)
    return [
        aggregate(cid, group, weights, adjudications.get(cid))
        for cid, group in by_comparison([v for v in votes if not v.is_gold]).items()
    ]


def quality_report(session: Session, *, project: Project) -> QualityReport:
    votes = load_votes(session, project_id=project.id)
    stats = annotator_stats(votes, load_gold(session, project_id=project.id))
    users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(list(stats))))}
    rows = [
        AnnotatorRow(uid, users[uid].email, users[uid].display_name, s)
        for uid, s in sorted(stats.items(), key=lambda item: users[item[0]].email)
    ]
    adjudications = latest_adjudications(session, project_id=project.id)
    weights = weights_of(stats)
    groups = by_comparison([v for v in votes if not v.is_gold])
    ties: dict[str, int] = {"helpfulness": 0, "harmlessness": 0, "a_is_safe": 0, "b_is_safe": 0}
    disagreeing = 0
    for cid, group in groups.items():
        disagreeing += int(bool(disagreement(group)))
        for name in aggregate(cid, group, weights, adjudications.get(cid)).ties:
            ties[name] += 1
    return QualityReport(
        project_id=project.id,
        votes=len(votes),
        comparisons_with_votes=len(groups),
        agreement=agreement_rows(session, votes),
        annotators=rows,
        disagreements=disagreeing,
        adjudicated=len(adjudications),
        ties=ties,
    )
