"""What a detector is: a pattern compiled once, and an optional check of each candidate."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

Span = tuple[int, int, "Detector"]


@dataclass(frozen=True, eq=False)
class Detector:
    """Finds one kind of personal data in text.

    ``kind`` is the name used in config (``iban_tr``), ``label`` the one placeholders show
    (``IBAN``). ``valid`` rejects candidates the pattern cannot (checksums, digit counts).
    ``needs`` / ``needs_digit`` let the scanner skip texts that cannot contain a match without
    running the pattern at all.
    """

    kind: str
    label: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    needs: str | None = None
    needs_digit: bool = False

    def find(self, text: str) -> Iterator[Span]:
        """``(start, end, self)`` of every match that passes ``valid``."""
        valid = self.valid
        for match in self.pattern.finditer(text):
            start, end = match.span()
            if end > start and (valid is None or valid(match.group())):
                yield start, end, self
