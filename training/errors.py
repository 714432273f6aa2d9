"""User-facing errors (torch-free). The CLI prints these as one clear line, never a traceback."""


class UserError(Exception):
    """A mistake the user can fix: a bad option, a missing file, malformed data."""


class ConfigError(UserError):
    """An unknown, missing or invalid configuration key or value."""


class DataError(UserError):
    """A data file that is missing, unreadable or not in the expected schema."""
