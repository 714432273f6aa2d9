"""Importing prompts, responses and preference files (PKU-SafeRLHF, HH-RLHF) into a project."""

from backend.services.imports.service import GOLD_OVERLAP, ImportOptions, run_import

__all__ = ["GOLD_OVERLAP", "ImportOptions", "run_import"]
