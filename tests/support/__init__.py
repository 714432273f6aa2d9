"""Helpers for tests: databases, processes, logins."""
