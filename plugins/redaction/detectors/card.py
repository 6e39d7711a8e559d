"""Payment card numbers: 13 to 19 digits as they are printed, with a valid Luhn check digit."""

from __future__ import annotations

import re

from plugins.redaction.detectors.base import Detector

# Contiguous, grouped by four (4111 1111 1111 1111, 19-digit cards end in 4-3), or the 4-6-5
# and 4-6-4 groups of American Express and Diners; one separator kind per number. The first
# digit is matched before the check that no digit or dash precedes it (see detectors.base).
CARD_PATTERN = re.compile(
    r"\d(?<![\d-].)(?:\d{12,18}"
    r"|\d{3}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
    r"|\d{3}(?P<a>[ -])\d{6}(?P=a)\d{4,5})(?!\d)")


def luhn_valid(text: str) -> bool:
    """The Luhn (mod 10) check every card number carries in its last digit."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


CARD = Detector("card", "CARD", CARD_PATTERN, luhn_valid, needs_digit=True)
