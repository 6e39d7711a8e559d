"""What a detector is: a pattern compiled once, and an optional check of each candidate.

Patterns are written to start with a literal or a character class wherever possible (a
boundary check then follows the first character, as a look-behind one character wider):
Python's regex engine skips quickly to such a first character, but must try every position of
the text when a pattern begins with a look-behind. Where no such start exists (e-mail, IPv6),
an ``anchor`` finds the few places worth trying, a ``lead`` pattern matched backwards from
each finds where a match would begin, and the pattern is matched once, there.
"""

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
    running the pattern at all. With ``anchor``, ``lead`` is matched against the (reversed)
    ``reach`` characters before each anchor match, and the pattern where that lead begins.
    """

    kind: str
    label: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    needs: str | None = None
    needs_digit: bool = False
    anchor: re.Pattern[str] | None = None
    lead: re.Pattern[str] | None = None
    reach: int = 0

    def find(self, text: str) -> Iterator[Span]:
        """``(start, end, self)`` of every match that passes ``valid``."""
        matches = self.pattern.finditer(text) if self.anchor is None else self._near_anchors(text)
        valid = self.valid
        for match in matches:
            start, end = match.span()
            if end > start and (valid is None or valid(match.group())):
                yield start, end, self

    def _near_anchors(self, text: str) -> Iterator[re.Match[str]]:
        assert self.anchor is not None and self.lead is not None
        done = 0  # matches never overlap: skip anchors inside the last one
        for hit in self.anchor.finditer(text):
            at = hit.start()
            if at < done:
                continue
            # Reversed, so the regex engine walks back from the anchor (it cannot search
            # backwards itself); the lead's length is how far before the anchor a match starts.
            lead = self.lead.match(text[max(done, at - self.reach):at][::-1])
            match = self.pattern.match(text, at - (lead.end() if lead else 0))
            if match:
                done = match.end()
                yield match
