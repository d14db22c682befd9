"""Errors a user can act on.

Anything raised as a `PharmaflowError` is shown by the CLI as one line (no traceback): it means
the input or the configuration is wrong, not that pharmaflow has a bug.
"""


class PharmaflowError(Exception):
    """A problem the user can fix: bad argument, missing file, refused schema change."""


class IncompatibleSchemaError(PharmaflowError):
    """A contract change that would break existing readers or writers."""
