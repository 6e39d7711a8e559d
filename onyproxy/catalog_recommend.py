"""Recommending catalog models for a described need: keyword rules and a weighted score.

No language model is involved, and every step is shown to the user:

1. :func:`parse_need` reads the description with fixed keyword rules (English and Turkish):
   "tools"/"agent" → tools, "image"/"screenshot" → vision, "long documents" → at least 200k
   context, "128k context" → that context, "cheap" → cost first, "best"/"reasoning" → quality
   first, a provider's name → that provider. What it recognised is listed with the result.
2. The filters (from the form or flags, plus what the text added) remove every model that
   cannot do the job. Embedding models are only considered when embeddings are asked for, and
   the ``mock`` provider only when it is asked for by name.
3. Each remaining model gets 0..1 on four criteria, weighted by the priority
   (:data:`WEIGHTS`): **cost** (blended price at 3:1 input:output, log scale between the
   cheapest and dearest candidate), **tier** (the reverse of cost: the catalog has no
   benchmark, so price tier stands in for capability), **context** (log scale between the
   candidates), **fit** (words of the need found in the model's description), and
   **available** (this gateway already serves it). The score is the weighted sum times 100.
   Without a description, fit's weight is shared out among the others.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from onyproxy.catalog_search import Entry, Filters, entry_record, refusals

Priority = Literal["balanced", "cost", "quality"]
WEIGHTS: dict[str, dict[str, float]] = {
    "balanced": {"cost": 0.45, "tier": 0.0, "context": 0.15, "fit": 0.3, "available": 0.1},
    "cost": {"cost": 0.7, "tier": 0.0, "context": 0.1, "fit": 0.1, "available": 0.1},
    "quality": {"cost": 0.0, "tier": 0.45, "context": 0.15, "fit": 0.3, "available": 0.1},
}
LONG_CONTEXT = 200_000
_RULES: list[tuple[str, str]] = [  # (regular expression, what it means)
    (r"\b(tools?|function[- ]?call\w*|agents?|agentic|araç\w*)\b", "need:tools"),
    (r"\b(vision|images?|photos?|screenshots?|pictures?|görsel\w*|resim\w*)\b", "need:vision"),
    (r"\b(pdfs?)\b", "need:pdf"),
    (r"\b(audio|speech|voice|ses)\b", "need:audio"),
    (r"\b(videos?)\b", "need:video"),
    (r"\b(embeddings?|vectors?|semantic search)\b", "need:embeddings"),
    (r"\b(cheap\w*|budget|low[- ]cost|inexpensive|affordable|ucuz\w*|high volume)\b",
     "priority:cost"),
    (r"\b(best|accurate|complex|hard|reasoning|frontier|most capable|en iyi)\b",
     "priority:quality"),
    (r"\b(long (documents?|context|files?)|books?|large context|uzun)\b", "context:long"),
    (r"\b(openai|gpt)\b", "provider:openai"),
    (r"\b(anthropic|claude)\b", "provider:anthropic"),
    (r"\b(gemini|google)\b", "provider:gemini"),
]
_CONTEXT_SIZE = re.compile(r"\b(\d+(?:\.\d+)?)\s*([km])\b\s*(?:tokens?|context|tok)?", re.I)
_STOPWORDS = frozenset({
    "a", "an", "and", "the", "for", "of", "to", "in", "on", "with", "that", "this", "my", "our",
    "is", "are", "be", "need", "want", "model", "models", "which", "what", "using", "use",
    "from", "or", "it", "as", "at", "by"})


@dataclass(frozen=True)
class Need:
    """A described need, read into filters and a priority; ``recognised`` lists the rules
    that fired (shown to the user)."""

    text: str
    filters: Filters
    priority: Priority = "balanced"
    recognised: tuple[str, ...] = ()


@dataclass(frozen=True)
class Criterion:
    name: str
    weight: float
    value: float  # 0..1
    note: str

    @property
    def points(self) -> float:
        return round(self.weight * self.value * 100, 1)


@dataclass(frozen=True)
class Recommendation:
    entry: Entry
    criteria: tuple[Criterion, ...]

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.criteria), 1)


def parse_need(text: str, base: Filters | None = None,
               priority: Priority | None = None) -> Need:
    """Read a description into a :class:`Need`; ``base`` filters and an explicit
    ``priority`` win over what the text implies."""
    base = base or Filters()
    lowered = text.lower()
    fired = [meaning for pattern, meaning in _RULES if re.search(pattern, lowered)]
    needs = set(base.needs) | {m.split(":")[1] for m in fired if m.startswith("need:")}
    min_context = base.min_context
    size = _CONTEXT_SIZE.search(text)
    if min_context is None and size is not None:
        min_context = int(float(size.group(1)) * (1000 if size.group(2).lower() == "k"
                                                  else 1_000_000))
        fired.append(f"context:{min_context}")
    elif min_context is None and "context:long" in fired:
        min_context = LONG_CONTEXT
    named = [m.split(":")[1] for m in fired if m.startswith("provider:")]
    provider = base.provider or (named[0] if len(named) == 1 else None)
    implied: Priority = ("cost" if "priority:cost" in fired else
                         "quality" if "priority:quality" in fired else "balanced")
    filters = replace(base, needs=frozenset(needs), min_context=min_context, provider=provider)
    return Need(text, filters, priority or implied, tuple(dict.fromkeys(fired)))


def candidates(found: Sequence[Entry], need: Need) -> list[Entry]:
    """The entries the need's filters allow (see the module docs for embeddings and mock)."""
    wants_embeddings = "embeddings" in need.filters.needs
    wants_mock = need.filters.provider == "mock"
    return [e for e in found if not refusals(e, need.filters)
            and e.embedding == wants_embeddings
            and (e.info.provider != "mock" or wants_mock)]


def recommend(found: Sequence[Entry], need: Need, limit: int = 3) -> list[Recommendation]:
    """The best ``limit`` candidates, highest score first (then cheaper, then by name)."""
    pool = candidates(found, need)
    if not pool:
        return []
    prices = _log_range([float(e.blended_price) for e in pool])
    contexts = _log_range([float(e.info.context_window or 1) for e in pool])
    words = _words(need.text)
    weights = _weights(need.priority, bool(words))
    ranked = [Recommendation(e, _criteria(e, weights, prices, contexts, words)) for e in pool]
    ranked.sort(key=lambda r: (-r.score, r.entry.blended_price, r.entry.name))
    return ranked[:limit]


def recommendation_record(pick: Recommendation) -> dict:
    """The JSON of a recommendation: the entry, its score and each criterion's share."""
    return {**entry_record(pick.entry), "score": pick.score,
            "criteria": [{"name": c.name, "weight": c.weight, "value": round(c.value, 3),
                          "points": c.points, "note": c.note} for c in pick.criteria]}


def _criteria(entry: Entry, weights: dict[str, float], prices: tuple[float, float],
              contexts: tuple[float, float], words: set[str]) -> tuple[Criterion, ...]:
    cheap = 1 - _position(float(entry.blended_price), prices)
    price_note = f"${entry.blended_price:.3f} per 1M tokens blended (3:1 input:output)"
    context = entry.info.context_window or 0
    matched = sorted(words & _words(f"{entry.name} {entry.info.description}"))
    fit = min(1.0, len(matched) / 2)
    served = ", ".join(entry.served_as)
    rows = [
        Criterion("cost", weights["cost"], cheap, price_note),
        Criterion("tier", weights["tier"], 1 - cheap, "price tier as a stand-in for capability"),
        Criterion("context", weights["context"],
                  _position(float(context or 1), contexts), f"{context:,} tokens"),
        Criterion("fit", weights["fit"], fit,
                  f"description mentions: {', '.join(matched)}" if matched
                  else "no words of the need in its description"),
        Criterion("available", weights["available"], 1.0 if served else 0.0,
                  f"served here as {served}" if served else "not configured on this gateway"),
    ]
    return tuple(c for c in rows if c.weight > 0)


def _weights(priority: Priority, described: bool) -> dict[str, float]:
    """The priority's weights; without a description, fit's share goes to the others."""
    weights = WEIGHTS[priority]
    if described:
        return weights
    rest = 1 - weights["fit"]
    return {name: (0.0 if name == "fit" else round(w / rest, 4)) for name, w in weights.items()}


def _log_range(values: list[float]) -> tuple[float, float]:
    logs = [math.log(v + 0.01) for v in values]
    return min(logs), max(logs)


def _position(value: float, span: tuple[float, float]) -> float:
    """Where ``value`` lies between the span's ends on a log scale, 0..1 (1 when equal)."""
    low, high = span
    if high - low < 1e-9:
        return 1.0
    return (math.log(value + 0.01) - low) / (high - low)


def _words(text: str) -> set[str]:
    found = set()
    for word in re.findall(r"[^\W_]+", text.lower()):  # letters of any script, digits
        word = word.removesuffix("s") if len(word) > 3 else word
        if word not in _STOPWORDS and len(word) > 2:
            found.add(word)
    return found
