"""Contact details: e-mail addresses and phone numbers (Turkish formats and international)."""

from __future__ import annotations

import re

from plugins.redaction.detectors.base import Detector

# Local part (an apostrophe may join pieces, as in o'brien, never start one), '@', domain labels
# and a letter-only top-level domain. The pattern is only tried where the local part before an
# '@' begins (see detectors.base); the local part reads the same pattern backwards.
_LOCAL = r"[\w.%+-]+(?:'[\w.%+-]+)*"
EMAIL_PATTERN = re.compile(
    r"(?<![\w.%+-])" + _LOCAL + r"@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}(?![\w-])")
EMAIL_ANCHOR = re.compile("@")
EMAIL_LOCAL = re.compile(_LOCAL)
LOCAL_PART_MAX = 64  # RFC 5321

# Each alternative starts with a literal so the regex engine can skip to candidates; the
# boundary that follows the first character says it was not inside a word or a longer number
# and not the tail of "1.250" or "3,5" (see detectors.base).
_B = r"(?<![\w+].)(?<!\d[.,].)"
_SEP = r"[ .-]?"
# Turkish numbers: +90 / 0090 / 0 and an area or mobile code (2xx-5xx, 8xx), then 3-2-2 digits:
# +90 532 123 45 67, +90 (532) 123-45-67, 0532 123 45 67, 0 (532) 1234567, (0212) 123 45 67.
_TR_REST = r"[2-58]\d{2}\)?" + _SEP + r"\d{3}" + _SEP + r"\d{2}" + _SEP + r"\d{2}"
_TR_PREFIXED = [
    r"\+" + _B + "90" + _SEP + r"\(?0?" + _TR_REST,   # +90 532 ..., +90 (0532) ...
    "0" + _B + "090" + _SEP + r"\(?0?" + _TR_REST,    # 0090 532 ...
    r"\(" + _B + "0" + _SEP + r"\(?" + _TR_REST,      # (0212) ...
    "0" + _B + _SEP + r"\(?" + _TR_REST,              # 0532 ..., 0 (532) ...
]
# Without a prefix only the grouped mobile forms (532 123 45 67, (532) 123 45 67) count, so a
# bare 10-digit number is not taken for a phone.
_TR_BARE = [
    "5" + _B + r"\d{2}(?P<g>[ -])\d{3}(?P=g)\d{2}(?P=g)\d{2}",
    r"\(" + _B + r"5\d{2}\) ?\d{3}[ -]?\d{2}[ -]?\d{2}",
]
# International E.164 with the usual separators: +44 20 7946 0958, +1 (415) 555-2671.
# Turkey's +90 is left to the forms above; the digit count is checked after matching.
_INTERNATIONAL = [r"\+" + _B + r"(?!90)[1-9]\d{0,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}"]

PHONE_PATTERN = re.compile(
    "(?:" + "|".join(_TR_PREFIXED + _TR_BARE + _INTERNATIONAL) + r")(?![\d)])")

_DIGITS = re.compile(r"\d")


def phone_valid(text: str) -> bool:
    """E.164 allows at most 15 digits; fewer than 8 is a short code or an amount, not a phone."""
    return 8 <= len(_DIGITS.findall(text)) <= 15


EMAIL = Detector("email", "EMAIL", EMAIL_PATTERN, needs="@", anchor=EMAIL_ANCHOR,
                 lead=EMAIL_LOCAL, reach=LOCAL_PART_MAX)
PHONE = Detector("phone", "PHONE", PHONE_PATTERN, phone_valid, needs_digit=True)
