"""Pydantic request/response schemas of the JSON API (`XCreate` / `XRead`)."""
