"""Evaluation: sampling a policy's answers to a prompt set, scoring them with the reward and cost
models (and, in the toy world, the judges), and the red-vs-blue arena of SAFE_RLHF_SPEC.md §8.1."""
