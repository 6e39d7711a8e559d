"""Turkish identifiers: national id numbers (TCKN) and IBANs, each validated by its checksum.

The checksums are what keeps ordinary numbers (order numbers, invoice numbers) from being masked:
only about one random 11-digit number in a hundred passes the TCKN check, and one in 97 random
24-digit strings the IBAN check.
"""

from __future__ import annotations

import re

from plugins.redaction.detectors.base import Detector

# Eleven digits, not part of a longer number; the first digit is never 0.
TCKN_PATTERN = re.compile(r"[1-9](?<!\d.)\d{10}(?!\d)")

# "TR" and 24 digits, not glued to a word; printed IBANs group the digits by four, so single
# spaces or dashes between digits are allowed.
IBAN_TR_PATTERN = re.compile(r"[Tt](?<![A-Za-z0-9].)[Rr]\d{2}(?:[ -]?\d){22}(?!\d)")


def tckn_valid(text: str) -> bool:
    """The two check digits of a TCKN (Turkish national id number) are right."""
    d = [int(c) for c in text]
    if len(d) != 11 or d[0] == 0:
        return False
    odd = d[0] + d[2] + d[4] + d[6] + d[8]
    even = d[1] + d[3] + d[5] + d[7]
    return (odd * 7 - even) % 10 == d[9] and sum(d[:10]) % 10 == d[10]


def iban_valid(text: str) -> bool:
    """ISO 13616: country and check digits moved to the end, letters as 10..35, mod 97 is 1."""
    compact = text.replace(" ", "").replace("-", "").upper()
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


TCKN = Detector("tckn", "TCKN", TCKN_PATTERN, tckn_valid, needs_digit=True)
IBAN_TR = Detector("iban_tr", "IBAN", IBAN_TR_PATTERN, iban_valid, needs_digit=True)
