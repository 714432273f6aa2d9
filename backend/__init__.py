"""The web process: FastAPI + SQLAlchemy. Never imports torch, the worker or training code."""
