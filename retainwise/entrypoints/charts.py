"""Bar charts as geometry for server-rendered SVG (templates/macros.html draws them).

SVG from our own templates needs no JavaScript library and nothing fetched at run time, and Jinja2's
autoescaping covers the labels, which can be a customer's column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bar:
    label: str
    text: str      # the value as a person reads it
    x: float
    y: float
    width: float
    height: float
    css: str = ""


@dataclass(frozen=True)
class Chart:
    name: str      # a stable id for tests and styles
    title: str
    width: int
    height: int
    horizontal: bool
    bars: list[Bar] = field(default_factory=list)
    threshold: float | None = None  # where the alert line is drawn (x or y), if any
    empty: str = "No data yet."


LABEL_SPACE = 130  # room for labels left of horizontal bars / below vertical ones (px)


def bar_chart(name: str, title: str, items: list[tuple[str, float]], *, horizontal: bool = False,
              value_format: str = "{:,.0f}", css: dict[str, str] | None = None,
              threshold: float | None = None, width: int = 420,
              empty: str = "No data yet.") -> Chart:
    """Bars scaled to the largest value (or the threshold, if larger); `css` classes by label."""
    css = css or {}
    top = max([v for _, v in items] + [threshold or 0.0, 1e-12])
    if horizontal:
        row, span = 22, width - LABEL_SPACE - 60
        height = max(row * len(items) + 10, 40)
        bars = [Bar(label, value_format.format(value), LABEL_SPACE, 5 + i * row,
                    span * value / top, row - 6, css.get(label, ""))
                for i, (label, value) in enumerate(items)]
        line = LABEL_SPACE + span * threshold / top if threshold is not None else None
    else:
        height, plot = 220, 220 - 50
        slot = (width - 20) / max(len(items), 1)
        bars = [Bar(label, value_format.format(value), 10 + i * slot + slot * 0.1,
                    20 + plot * (1 - value / top), slot * 0.8, plot * value / top,
                    css.get(label, ""))
                for i, (label, value) in enumerate(items)]
        line = 20 + plot * (1 - threshold / top) if threshold is not None else None
    if not any(value for _, value in items):
        bars = []
    return Chart(name, title, width, height, horizontal, bars, line, empty)
