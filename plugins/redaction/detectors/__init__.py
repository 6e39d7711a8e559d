"""The built-in detectors by config name, and custom ones built from config patterns."""

from __future__ import annotations

import re

from plugins.redaction.detectors.base import Detector, Span
from plugins.redaction.detectors.card import CARD
from plugins.redaction.detectors.contact import EMAIL, PHONE
from plugins.redaction.detectors.network import IPV4, IPV6
from plugins.redaction.detectors.turkish import IBAN_TR, TCKN

__all__ = ["BUILT_IN", "KINDS", "Detector", "Span", "custom_detector", "detectors_for"]

# Config name -> detectors. "ip" covers both address families.
BUILT_IN: dict[str, tuple[Detector, ...]] = {
    "email": (EMAIL,),
    "phone": (PHONE,),
    "tckn": (TCKN,),
    "iban_tr": (IBAN_TR,),
    "card": (CARD,),
    "ip": (IPV4, IPV6),
}
KINDS: tuple[str, ...] = tuple(BUILT_IN)


def custom_detector(name: str, pattern: str) -> Detector:
    """A detector for a config regex; its placeholder label is the name in capitals."""
    return Detector(name, name.upper(), re.compile(pattern))


def detectors_for(kinds: list[str]) -> list[Detector]:
    """The built-in detectors of ``kinds``, in config order, without repeats."""
    found: list[Detector] = []
    for kind in kinds:
        for detector in BUILT_IN[kind]:
            if detector not in found:
                found.append(detector)
    return found
