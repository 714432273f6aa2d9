"""The Celery process: thin tasks that take IDs, claim work in Postgres and run it."""
