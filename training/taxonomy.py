"""Harm taxonomy shared by the data readers and the toy world (torch-free).

The project's safety meta-labels use the 14 BeaverTails categories (docs/design/method.md §1.1): a
response is safe only if it is harmless in every one of them. PKU-SafeRLHF v1 (2024) ships a
different dict of 19 categories; :data:`PKU_V1_TO_BEAVERTAILS` maps those names onto ours so v1
files can be read into the project taxonomy.
"""

from __future__ import annotations

from collections.abc import Mapping

BEAVERTAILS_CATEGORIES: tuple[str, ...] = (
    "Hate Speech, Offensive Language",
    "Discrimination, Stereotype, Injustice",
    "Violence, Aiding and Abetting, Incitement",
    "Financial Crime, Property Crime, Theft",
    "Privacy Violation",
    "Drug Abuse, Weapons, Banned Substance",
    "Non-Violent Unethical Behavior",
    "Sexually Explicit, Adult Content",
    "Controversial Topics, Politics",
    "Misinformation regarding ethics, laws and safety",
    "Terrorism, Organized Crime",
    "Self-Harm",
    "Animal Abuse",
    "Child Abuse",
)

PKU_V1_CATEGORIES: tuple[str, ...] = (
    "Animal Abuse",
    "Copyright Issues",
    "Cybercrime",
    "Discriminatory Behavior",
    "Disrupting Public Order",
    "Drugs",
    "Economic Crime",
    "Endangering National Security",
    "Endangering Public Health",
    "Environmental Damage",
    "Human Trafficking",
    "Insulting Behavior",
    "Mental Manipulation",
    "Physical Harm",
    "Privacy Violation",
    "Psychological Harm",
    "Sexual Content",
    "Violence",
    "White-Collar Crime",
)

# Nearest BeaverTails category for each v1 category (our judgement; v1 has no official mapping).
# backend/domain/taxonomy.py holds the same map for imports (neither package may import the other);
# tests/backend/test_export_training.py fails if the two differ.
PKU_V1_TO_BEAVERTAILS: dict[str, str] = {
    "Animal Abuse": "Animal Abuse",
    "Copyright Issues": "Non-Violent Unethical Behavior",
    "Cybercrime": "Financial Crime, Property Crime, Theft",
    "Discriminatory Behavior": "Discrimination, Stereotype, Injustice",
    "Disrupting Public Order": "Violence, Aiding and Abetting, Incitement",
    "Drugs": "Drug Abuse, Weapons, Banned Substance",
    "Economic Crime": "Financial Crime, Property Crime, Theft",
    "Endangering National Security": "Terrorism, Organized Crime",
    "Endangering Public Health": "Misinformation regarding ethics, laws and safety",
    "Environmental Damage": "Non-Violent Unethical Behavior",
    "Human Trafficking": "Terrorism, Organized Crime",
    "Insulting Behavior": "Hate Speech, Offensive Language",
    "Mental Manipulation": "Non-Violent Unethical Behavior",
    "Physical Harm": "Violence, Aiding and Abetting, Incitement",
    "Privacy Violation": "Privacy Violation",
    "Psychological Harm": "Self-Harm",
    "Sexual Content": "Sexually Explicit, Adult Content",
    "Violence": "Violence, Aiding and Abetting, Incitement",
    "White-Collar Crime": "Financial Crime, Property Crime, Theft",
}

SEVERITY_LEVELS: dict[int, str] = {0: "safe", 1: "minor", 2: "moderate", 3: "severe"}


def empty_category_dict() -> dict[str, bool]:
    """All 14 BeaverTails categories set to False (a harmless response)."""
    return dict.fromkeys(BEAVERTAILS_CATEGORIES, False)


def category_dict(active: set[str] | frozenset[str]) -> dict[str, bool]:
    """The v1-style boolean dict over the project taxonomy with ``active`` set to True."""
    unknown = set(active) - set(BEAVERTAILS_CATEGORIES)
    if unknown:
        raise ValueError(f"unknown harm categories: {sorted(unknown)}")
    return {name: name in active for name in BEAVERTAILS_CATEGORIES}


def to_beavertails(categories: Mapping[str, bool]) -> dict[str, bool]:
    """Map a harm-category dict (BeaverTails or PKU v1 names) onto the 14 BeaverTails names."""
    out = empty_category_dict()
    for name, flagged in categories.items():
        if not flagged:
            continue
        target = name if name in out else PKU_V1_TO_BEAVERTAILS.get(name)
        if target is None:
            raise ValueError(f"unknown harm category {name!r}")
        out[target] = True
    return out
