"""`Evo1Error`: bad input, files or settings, as a one-line message naming file and field.

The CLI turns it into that line on stderr and exit code 1, as it does the robots' `RobotError` and the
client's `wire.RequestError` (evo1cli/commands/__init__.py).
"""

from __future__ import annotations

from pathlib import Path


class Evo1Error(Exception):
    """A user-facing error: bad input, a malformed file, an impossible setting.

    The message names the file (when there is one) and the field, on one line, so that the
    CLI can print it without a traceback: ``<file>: <field>: <what is wrong>``.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        return ": ".join(p for p in (self.path, self.field, self.message) if p)

    def at(self, path: str | Path) -> Evo1Error:
        """The same error, attributed to `path` unless it already names a file."""
        if self.path is not None:
            return self
        return Evo1Error(self.message, path=path, field=self.field)
