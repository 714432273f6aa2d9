"""The request edge shared by the JSON API (backend.api) and the pages (backend.web): who is calling,
the route policies, the CSRF check and the request's DB session. Both depend on it; neither depends
on the other (the layers contract in pyproject.toml)."""
