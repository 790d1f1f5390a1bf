"""The one base of every error a user can fix.

A library function raises a subclass of `TtskitError` with a message that names the file, key or
value and what to do; the CLI prints that message as one line and exits 2, never a traceback.
Errors that are control flow inside a stage (an utterance skipped, an alignment rejected) are not
`TtskitError`s: they are caught and reported by the stage that raised them.
"""

from __future__ import annotations


class TtskitError(Exception):
    """A problem the user can fix; the message says which and how."""
