"""Rounds: the Safe RLHF loop as a state machine over training jobs (docs/rounds.md)."""
