"""Server-rendered Jinja2 pages (annotator, reviewer, admin) over the same services as the API."""
