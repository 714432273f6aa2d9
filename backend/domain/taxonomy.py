"""The default harm taxonomy (the 14 BeaverTails categories, docs/design/method.md §1.1) and severities.

Categories have a stable `key` (stored in annotations) and a `label` (shown to people and used as
the key of the PKU-SafeRLHF v1 `response_i_harm_category` dicts in exports). The labels are the
exact names the training package reads. PKU-SafeRLHF v1 files carry 19 other categories;
`PKU_V1_TO_BEAVERTAILS` maps them to the nearest BeaverTails one so v1 labels can be imported.
"""

from __future__ import annotations

import re
from typing import Any

BEAVERTAILS: tuple[tuple[str, str, str], ...] = (
    ("hate_speech", "Hate Speech, Offensive Language", "Insults, slurs or demeaning language about people."),
    (
        "discrimination",
        "Discrimination, Stereotype, Injustice",
        "Unfair treatment or stereotypes about a group.",
    ),
    (
        "violence",
        "Violence, Aiding and Abetting, Incitement",
        "Helping, encouraging or glorifying physical harm.",
    ),
    ("financial_crime", "Financial Crime, Property Crime, Theft", "Fraud, theft, scams, property damage."),
    ("privacy_violation", "Privacy Violation", "Revealing or helping to obtain private personal data."),
    (
        "drugs_weapons",
        "Drug Abuse, Weapons, Banned Substance",
        "Making, obtaining or misusing drugs, weapons or banned substances.",
    ),
    ("unethical_behavior", "Non-Violent Unethical Behavior", "Lying, cheating, manipulation and the like."),
    ("sexual_content", "Sexually Explicit, Adult Content", "Explicit sexual material."),
    (
        "controversial_topics",
        "Controversial Topics, Politics",
        "One-sided or inflammatory political content.",
    ),
    (
        "misinformation",
        "Misinformation regarding ethics, laws and safety",
        "False statements about laws, ethics or safety.",
    ),
    ("terrorism", "Terrorism, Organized Crime", "Support for terrorist or organised criminal activity."),
    ("self_harm", "Self-Harm", "Encouraging or instructing self-injury or suicide."),
    ("animal_abuse", "Animal Abuse", "Cruelty to animals."),
    ("child_abuse", "Child Abuse", "Any harm to or sexualisation of children."),
)

SEVERITY_LEVELS: tuple[tuple[int, str, str], ...] = (
    (0, "safe", "No harm in any category."),
    (1, "minor", "Mildly harmful; limited and unlikely real-world impact."),
    (2, "moderate", "Clearly harmful; could contribute to real harm."),
    (3, "severe", "Seriously harmful; direct, actionable or irreversible harm."),
)

MAX_SEVERITY = 3

# Nearest BeaverTails category for each PKU-SafeRLHF v1 category (our judgement; v1 publishes no
# official mapping). training/taxonomy.py holds the same map (backend may not import training, nor
# training backend); tests/backend/test_export_training.py fails if the two differ.
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

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


# Compact names for the annotator's category chips; the full label stays as the tooltip.
SHORT_NAMES = {
    "hate_speech": "Hate speech",
    "discrimination": "Discrimination",
    "violence": "Violence",
    "financial_crime": "Financial crime",
    "privacy_violation": "Privacy",
    "drugs_weapons": "Drugs, arms",
    "unethical_behavior": "Unethical",
    "sexual_content": "Sexual content",
    "controversial_topics": "Controversial",
    "misinformation": "Misinformation",
    "terrorism": "Terrorism",
    "self_harm": "Self-harm",
    "animal_abuse": "Animal abuse",
    "child_abuse": "Child abuse",
}


def default_taxonomy() -> list[dict[str, Any]]:
    return [
        {"key": k, "label": label, "short": SHORT_NAMES[k], "description": d} for k, label, d in BEAVERTAILS
    ]


def default_severity_levels() -> list[dict[str, Any]]:
    return [{"level": n, "label": label, "description": d} for n, label, d in SEVERITY_LEVELS]


def slugify(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return (slug or "category")[:64]


def category_lookup(taxonomy: list[dict[str, Any]]) -> dict[str, str]:
    """Every accepted spelling of a category (key, label, lower-cased label, v1 name) -> its key."""
    lookup: dict[str, str] = {}
    by_label = {str(c["label"]): str(c["key"]) for c in taxonomy}
    for cat in taxonomy:
        key, label = str(cat["key"]), str(cat["label"])
        lookup[key] = key
        lookup[label] = key
        lookup[label.lower()] = key
        lookup[slugify(label)] = key
    for v1_name, bt_label in PKU_V1_TO_BEAVERTAILS.items():
        if bt_label in by_label:
            lookup.setdefault(v1_name, by_label[bt_label])
            lookup.setdefault(v1_name.lower(), by_label[bt_label])
    return lookup
