"""User-facing input errors.

Every problem caused by what the user passed in (a config, a data file, a
shape) raises an :class:`InputError` whose message is one sentence naming the
problem and the fix.  The CLI turns it into exit code 2 and writes nothing.
"""


class InputError(ValueError):
    """Bad user input: the message names the problem and how to fix it."""


class ConfigError(InputError):
    """An invalid configuration value, key or type."""


class DataError(InputError):
    """A missing, unreadable or corrupt data file."""
