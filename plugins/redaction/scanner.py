"""Find personal data in a text with a fixed set of detectors, and replace it.

A scanner is built once, at start, from the configured kinds and custom patterns; per text it
runs only the detectors whose cheap precondition holds (an '@' for e-mail, a digit for numbers).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from plugins.redaction.detectors import Detector, Span

_DIGIT = re.compile(r"\d")

# Called for each finding with (detector, matched text); returns the text that replaces it.
Replacer = Callable[[Detector, str], str]


class Scanner:
    """Runs detectors over a text and resolves overlapping findings."""

    def __init__(self, detectors: list[Detector]) -> None:
        self.detectors = detectors

    def find(self, text: str) -> list[Span]:
        """Non-overlapping findings, in text order.

        Where findings overlap, the one that starts first wins, then the longer one: an IBAN
        whose digits also pass the card check stays one IBAN.
        """
        if not text:
            return []
        has_digit = None
        spans: list[Span] = []
        for detector in self.detectors:
            if detector.needs is not None and detector.needs not in text:
                continue
            if detector.needs_digit:
                if has_digit is None:
                    has_digit = _DIGIT.search(text) is not None
                if not has_digit:
                    continue
            spans.extend(detector.find(text))
        return _without_overlaps(spans) if len(spans) > 1 else spans

    def replace(self, text: str, replacer: Replacer) -> tuple[str, list[Span]]:
        """``text`` with every finding replaced, and the findings."""
        spans = self.find(text)
        if not spans:
            return text, spans
        pieces: list[str] = []
        last = 0
        for start, end, detector in spans:
            pieces.append(text[last:start])
            pieces.append(replacer(detector, text[start:end]))
            last = end
        pieces.append(text[last:])
        return "".join(pieces), spans


def _without_overlaps(spans: list[Span]) -> list[Span]:
    spans.sort(key=lambda s: (s[0], s[0] - s[1]))
    kept: list[Span] = []
    end = -1
    for span in spans:
        if span[0] >= end:
            kept.append(span)
            end = span[1]
    return kept
