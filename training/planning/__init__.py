"""Memory planning of a training run before it starts (issue 12): torch-free arithmetic only, so
the worker can ask it without loading a framework. See :mod:`.memory` and ``python -m training plan``."""
