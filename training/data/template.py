"""The Safe RLHF prompt template (docs/design/method.md §1.3), exactly as upstream and the Beaver models.

``PROMPT_USER`` keeps its trailing space and ``PROMPT_ASSISTANT`` deliberately has none, so a
single-turn prompt is ``"BEGINNING OF CONVERSATION: USER: {input} ASSISTANT:"`` and the training
text is ``prompt + answer + eos``.
"""

from __future__ import annotations

PROMPT_BEGIN = "BEGINNING OF CONVERSATION: "
PROMPT_USER = "USER: {input} "
PROMPT_ASSISTANT = "ASSISTANT:"
PROMPT_INPUT = PROMPT_BEGIN + PROMPT_USER + PROMPT_ASSISTANT


def format_prompt(input: str | list[str], eos_token: str = "") -> str:
    """Template a user input, or a dialogue ``[user, assistant, ..., user]`` (odd length).

    In a dialogue every assistant turn is followed by ``eos_token`` (§1.3).
    """
    if isinstance(input, str):
        return PROMPT_INPUT.format(input=input)
    if len(input) % 2 != 1:
        raise ValueError("a dialogue must have an odd number of turns and end on a user turn")
    parts = [PROMPT_BEGIN]
    for i, turn in enumerate(input):
        if i % 2 == 0:
            parts.append(PROMPT_USER.format(input=turn) + PROMPT_ASSISTANT)
        else:
            parts.append(turn + eos_token)
    return "".join(parts)


def split_prompt_response(text: str) -> tuple[str, str]:
    """Split a templated text at its last ``ASSISTANT:`` into (prompt, response)."""
    head, sep, tail = text.rpartition(PROMPT_ASSISTANT)
    if not sep:
        raise ValueError("text does not contain the assistant tag")
    return head + sep, tail
