"""Pseudonyms of one request: each distinct value gets ``[LABEL_n]``, restored in the answer.

A vault lives in ``ex.state["redaction"]`` for one exchange only; nothing in it is written
anywhere. The same value always gets the same placeholder within the request, so the model can
still tell two people (or one person mentioned twice) apart.
"""

from __future__ import annotations

import re

import orjson

# Any placeholder shape; only the ones this vault issued are replaced.
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")
PLACEHOLDER_BYTES = re.compile(PLACEHOLDER.pattern.encode())  # checks answers before parsing


class Vault:
    """Placeholder ↔ original value, for one exchange."""

    __slots__ = ("_counts", "_escaped", "_issued", "labels", "longest", "values")

    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # placeholder -> original
        self._issued: dict[tuple[str, str], str] = {}  # (label, original) -> placeholder
        self._counts: dict[str, int] = {}
        self._escaped: dict[str, str] | None = None  # values as JSON string contents
        self.labels: set[str] = set()
        self.longest = 0  # length of the longest placeholder issued

    def __bool__(self) -> bool:
        return bool(self.values)

    def placeholder(self, label: str, value: str) -> str:
        """The placeholder for ``value``: the one it already has, or the next of ``label``."""
        key = (label, value)
        issued = self._issued.get(key)
        if issued is None:
            count = self._counts.get(label, 0) + 1
            self._counts[label] = count
            issued = f"[{label}_{count}]"
            self._issued[key] = issued
            self.values[issued] = value
            self._escaped = None
            self.labels.add(label)
            self.longest = max(self.longest, len(issued))
        return issued

    def restore(self, text: str, json_text: bool = False) -> str:
        """``text`` with every placeholder this vault issued replaced by its value.

        ``json_text``: ``text`` is JSON (tool-call arguments), so values are JSON-escaped;
        a custom kind's value may hold a quote or a backslash.
        """
        if "[" not in text or not self.values:
            return text
        values = self._json_values() if json_text else self.values
        return PLACEHOLDER.sub(lambda m: values.get(m.group(), m.group()), text)

    def _json_values(self) -> dict[str, str]:
        if self._escaped is None:
            self._escaped = {k: orjson.dumps(v).decode()[1:-1] for k, v in self.values.items()}
        return self._escaped

    def open_tail(self, text: str) -> int:
        """Where a placeholder that may continue in the next piece of text starts, else len.

        Only the last '[' can open one: a placeholder never contains '['. Only prefixes of
        issued labels count, so ordinary brackets ("[1]", "[link") are held back rarely and
        briefly.
        """
        start = text.rfind("[")
        if start < 0 or len(text) - start >= self.longest:
            return len(text)
        tail = text[start + 1:]
        for label in self.labels:
            head = label + "_"
            if head.startswith(tail):
                return start
            rest = tail[len(head):]
            if tail.startswith(head) and (not rest or (rest.isascii() and rest.isdigit())):
                return start
        return len(text)
