"""Pure-Python domain vocabulary: enums, state machines, task names and domain errors."""
