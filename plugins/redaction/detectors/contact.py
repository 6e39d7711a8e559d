"""Contact details: e-mail addresses and phone numbers (Turkish formats and international)."""

from __future__ import annotations

import re

from plugins.redaction.detectors.base import Detector

# The look-behind makes a match start only at the beginning of an address: without it, a long
# run of word characters without '@' would be retried from every position (quadratic time).
# An apostrophe may join local-part pieces (o'brien@...), never start one.
EMAIL_PATTERN = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+(?:'[\w.%+-]+)*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}(?![\w-])")

_SEP = r"[ .-]?"

# Turkish numbers: +90 / 0090 / 0 and an area or mobile code (2xx-5xx, 8xx), then 3-2-2 digits:
# +90 532 123 45 67, +90 (532) 123-45-67, 0532 123 45 67, 0 (532) 1234567, (0212) 123 45 67.
# Without a prefix only the grouped mobile form (532 123 45 67, (532) 123 45 67) counts, so a
# bare 10-digit number is not taken for a phone.
_TR_PREFIXED = (
    r"(?:(?:\+|00)90" + _SEP + r"\(?0?|\(?0" + _SEP + r"\(?)[2-58]\d{2}\)?"
    + _SEP + r"\d{3}" + _SEP + r"\d{2}" + _SEP + r"\d{2}"
)
_TR_BARE = r"(?:5\d{2}([ -])\d{3}\1\d{2}\1\d{2}|\(5\d{2}\) ?\d{3}[ -]?\d{2}[ -]?\d{2})"

# International E.164 with the usual separators: +44 20 7946 0958, +1 (415) 555-2671.
# Turkey's +90 is left to the Turkish forms above; the digit count is checked after matching.
_INTERNATIONAL = r"\+(?!90)[1-9]\d{0,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}"

# Not inside a word or a longer number, and not the tail of "1.250" or "3,5".
PHONE_PATTERN = re.compile(
    r"(?<![\w+])(?<!\d[.,])(?:" + _TR_PREFIXED + "|" + _TR_BARE + "|" + _INTERNATIONAL
    + r")(?![\d)])")

_DIGITS = re.compile(r"\d")


def phone_valid(text: str) -> bool:
    """E.164 allows at most 15 digits; fewer than 8 is a short code or an amount, not a phone."""
    return 8 <= len(_DIGITS.findall(text)) <= 15


EMAIL = Detector("email", "EMAIL", EMAIL_PATTERN, needs="@")
PHONE = Detector("phone", "PHONE", PHONE_PATTERN, phone_valid, needs_digit=True)
