"""The one exception type a user of fo1_core can cause."""

from __future__ import annotations


class FO1Error(ValueError):
    """A problem with the user's input or setup, with a message written for that user.

    The UI shows ``str(error)`` as it is, so messages name the problem and what to do about it.
    """
