"""Bar charts as geometry for inline SVG, computed on the server (no chart library, no JS).

:func:`column_chart` draws one column per label (e.g. per day), stacked when given several
series; :func:`bar_chart` draws one horizontal bar per label (e.g. per model). The templates
turn the result into ``<svg>`` elements (``templates/_chart.html``); every bar carries a
``<title>`` with its exact value, and each chart sits next to a table with the same numbers,
which is what screen readers are pointed to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 640
HEIGHT = 240
LEFT = 64  # room for the y-axis labels
RIGHT = 8
TOP = 12
BOTTOM = 28  # room for the x-axis labels
MAX_X_LABELS = 8
Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: int  # index of the series: the stylesheet colours .series-0, .series-1 ...
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What ``_chart.html`` draws: bars, axis labels, grid lines and a legend."""

    title: str
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    x_labels: list[Label] = field(default_factory=list)
    y_labels: list[Label] = field(default_factory=list)
    grid: list[float] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)
    empty: bool = False


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def column_chart(title: str, labels: Sequence[str], series: Sequence[Series],
                 fmt: Format, ticks: int = 4, whole: bool = False) -> Chart:
    """Columns per label, the series stacked bottom to top; ``whole`` keeps the axis labels
    whole numbers (for counts such as requests)."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = nice_ceiling(max(totals, default=0))
    if whole and top < ticks:
        top = ticks
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    rects = []
    for i, label in enumerate(labels):
        base = TOP + plot_h
        for index, s in enumerate(series):
            h = plot_h * s.values[i] / top
            if h > 0:
                rects.append(Rect(round(LEFT + i * slot + slot * 0.15, 2), round(base - h, 2),
                                  round(slot * 0.7, 2), round(h, 2), index,
                                  f"{label} · {s.name}: {fmt(s.values[i])}"))
            base -= h
    step = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    x_labels = [Label(round(LEFT + (i + 0.5) * slot, 2), HEIGHT - 8, _short(label))
                for i, label in enumerate(labels) if i % step == 0]
    grid, y_labels = _y_axis(top, ticks, plot_h, fmt)
    return Chart(title, WIDTH, HEIGHT, rects, x_labels, y_labels, grid,
                 [s.name for s in series] if len(series) > 1 else [], empty=not any(totals))


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], fmt: Format) -> Chart:
    """One horizontal bar per label, longest scale first as given."""
    row = 28
    height = TOP + row * max(len(labels), 1) + 8
    label_w = 168
    plot_w = WIDTH - label_w - 96
    top = max(values, default=0) or 1
    rects, x_labels, y_labels = [], [], []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * row
        w = plot_w * value / top
        rects.append(Rect(label_w, y + 4, round(max(w, 1.0 if value else 0), 2), row - 10, 0,
                          f"{label}: {fmt(value)}"))
        y_labels.append(Label(label_w - 8, y + row / 2 + 4, _short(label, 22)))
        x_labels.append(Label(label_w + w + 6, y + row / 2 + 4, fmt(value)))
    return Chart(title, WIDTH, height, rects, x_labels, y_labels, [], [],
                 empty=not any(values))


def _y_axis(top: float, ticks: int, plot_h: float, fmt: Format) -> tuple[list[float],
                                                                         list[Label]]:
    grid, labels = [], []
    for t in range(ticks + 1):
        value = top * t / ticks
        y = round(TOP + plot_h - plot_h * t / ticks, 2)
        grid.append(y)
        labels.append(Label(LEFT - 6, y + 4, fmt(value)))
    return grid, labels


def _short(text: str, limit: int = 10) -> str:
    """Axis labels stay short: ``2026-01-05`` → ``01-05``; long names end in ``…``."""
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        return text[5:]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(value: float) -> str:
    """``1234567`` → ``1.2M``: axis labels for counts."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + unit
    return f"{value:g}"


def dollars(value: float) -> str:
    """Axis labels for USD: ``$0.25``, ``$12``, ``$1.5k``."""
    if abs(value) >= 1000:
        return "$" + compact(value)
    if abs(value) >= 10 or value == 0:
        return f"${value:,.0f}"
    return f"${value:.2f}" if abs(value) >= 0.01 else f"${value:.4f}"
