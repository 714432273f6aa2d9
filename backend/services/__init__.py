"""Use-cases shared by the JSON API, the web pages, the CLI and the worker."""
