"""Evaluation: sampling a policy's answers to a prompt set, scoring them with the reward and cost
models (and, in the toy world, the judges), and the red-vs-blue arena of docs/design/method.md §8.1."""
