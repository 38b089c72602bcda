"""Bar and line charts as geometry for server-rendered SVG (templates/macros.html draws them).

SVG from our own templates needs no JavaScript library and nothing fetched at run time, and Jinja2's
autoescaping covers the labels, which can be a customer's column names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the value as a person reads it
    x: float
    y: float
    width: float
    height: float
    css: str = ""


@dataclass(frozen=True)
class Chart:
    name: str  # a stable id for tests and styles
    title: str
    width: int
    height: int
    horizontal: bool
    bars: list[Bar] = field(default_factory=list)
    threshold: float | None = None  # where the alert line is drawn (x or y), if any
    empty: str = "No data yet."
    threshold_label: str = ""


LABEL_SPACE = 130  # room for labels left of horizontal bars / below vertical ones (px)


def bar_chart(
    name: str,
    title: str,
    items: Sequence[tuple[str, float | None]],
    *,
    horizontal: bool = False,
    value_format: str = "{:,.0f}",
    css: dict[str, str] | None = None,
    threshold: float | None = None,
    threshold_label: str = "",
    top: float | None = None,
    width: int = 420,
    empty: str = "No data yet.",
    missing: str = "none",
) -> Chart:
    """Bars scaled to `top`, else to the largest value (or the threshold, if larger); `css`
    classes by label; a None value is an empty slot labelled `missing`."""
    css = css or {}
    texts = [missing if v is None else value_format.format(v) for _, v in items]
    filled = [(label, v or 0.0) for label, v in items]
    scale = top or max([v for _, v in filled] + [threshold or 0.0, 1e-12])
    if horizontal:
        row, span = 22, width - LABEL_SPACE - 60
        height = max(row * len(filled) + 10, 40)
        bars = [
            Bar(
                label,
                texts[i],
                LABEL_SPACE,
                5 + i * row,
                span * value / scale,
                row - 6,
                css.get(label, ""),
            )
            for i, (label, value) in enumerate(filled)
        ]
        line = LABEL_SPACE + span * threshold / scale if threshold is not None else None
    else:
        height, plot = 220, 220 - 50
        slot = (width - 20) / max(len(filled), 1)
        bars = [
            Bar(
                label,
                texts[i],
                10 + i * slot + slot * 0.1,
                20 + plot * (1 - value / scale),
                slot * 0.8,
                plot * value / scale,
                css.get(label, ""),
            )
            for i, (label, value) in enumerate(filled)
        ]
        line = 20 + plot * (1 - threshold / scale) if threshold is not None else None
    if not any(value for _, value in filled):
        bars = []
    return Chart(name, title, width, height, horizontal, bars, line, empty, threshold_label)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    text: str  # when and the value, as a person reads them
    low: float | None = None  # the band's ends (y, px), drawn as an error bar
    high: float | None = None


@dataclass(frozen=True)
class Series:
    label: str
    css: str  # colour and line-style classes (the legend uses the same)
    points: list[Point]

    @property
    def path(self) -> str:
        return " ".join(
            f"{'L' if i else 'M'}{p.x:.1f},{p.y:.1f}" for i, p in enumerate(self.points)
        )


@dataclass(frozen=True)
class LineChart:
    name: str
    title: str
    x_label: str
    y_label: str
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    series: list[Series]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    reference: tuple[float, str] | None = None  # a horizontal line (y, px) and its label
    empty: str = "No data yet."


TimePoint = tuple[datetime, float, float | None, float | None]  # when, value, band low, band high
TICKS = 5


def line_chart(
    name: str,
    title: str,
    series: list[tuple[str, str, list[TimePoint]]],
    *,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float],
    y_step: float,
    y_format: str = "{:.2f}",
    reference: tuple[float, str] | None = None,
    width: int = 760,
    height: int = 300,
    empty: str = "No data yet.",
) -> LineChart:
    """Values over time, one line per (label, css, points); the y range grows to fit every value
    and band, in whole steps."""
    points = [p for _, _, ps in series for p in ps]
    left, top, right, bottom = 64.0, 14.0, width - 16.0, height - 48.0
    chart = LineChart(
        name,
        title,
        x_label,
        y_label,
        width,
        height,
        left,
        top,
        right,
        bottom,
        [],
        [],
        [],
        None,
        empty,
    )
    if not points:
        return chart
    values = [v for _, value, low, high in points for v in (value, low, high) if v is not None]
    low_y = math.floor(min([y_range[0], *values]) / y_step + 1e-9) * y_step
    high_y = math.ceil(max([y_range[1], *values]) / y_step - 1e-9) * y_step
    times = [when.timestamp() for when, *_ in points]
    first, last = min(times), max(times)
    span = (last - first) or 3600.0
    start = first if last > first else first - span / 2

    def x(when: datetime) -> float:
        return left + (right - left) * (when.timestamp() - start) / span

    def y(value: float) -> float:
        return bottom - (bottom - top) * (value - low_y) / (high_y - low_y)

    shown = "%d %b" if last - first >= 2 * 86400 else "%d %b %H:%M"
    drawn = [
        Series(
            label,
            css,
            [
                Point(
                    x(when),
                    y(value),
                    f"{label}, {when:%Y-%m-%d %H:%M}: {y_format.format(value)}",
                    None if low is None else y(low),
                    None if high is None else y(high),
                )
                for when, value, low, high in sorted(ps, key=lambda p: p[0])
            ],
        )
        for label, css, ps in series
        if ps
    ]
    ticks = sorted({first + (last - first) * i / (TICKS - 1) for i in range(TICKS)})
    x_ticks = [
        (
            x(datetime.fromtimestamp(t, points[0][0].tzinfo)),
            f"{datetime.fromtimestamp(t, points[0][0].tzinfo):{shown}}",
        )
        for t in ticks
    ]
    steps = round((high_y - low_y) / y_step)
    y_ticks = [
        (y(low_y + i * y_step), y_format.format(low_y + i * y_step)) for i in range(steps + 1)
    ]
    line = (y(reference[0]), reference[1]) if reference is not None else None
    return replace(chart, series=drawn, x_ticks=x_ticks, y_ticks=y_ticks, reference=line)


REASON_TEXT = re.compile(r"^(?P<words>.*) \((?P<share>[+-]\d+(?:\.\d+)?)(?:, was (?P<was>.*))?\)$")
REASON_WIDTH = 64  # px of a reason's small bar; zero in the middle


@dataclass(frozen=True)
class ReasonBar:
    """A reason as written in the actions list, and its signed bar (x, width in px)."""

    words: str
    share: float
    x: float
    width: float
    was: str | None = None  # the value before, when the reason names what changed

    @property
    def css(self) -> str:
        return "up" if self.share > 0 else "down"


def reason_bars(texts: list[str], scale: float | None = None) -> list[ReasonBar]:
    """`Contract is Month-to-month (+0.42)` -> words, +0.42 and a bar from the middle, scaled to
    `scale` (else the largest |share| given); `(+0.42, was One year)` keeps what it was; empty
    texts are left out."""
    parsed = [
        (m["words"], float(m["share"]), m["was"])
        for t in texts
        if (m := REASON_TEXT.match(t or ""))
    ]
    scale = scale or max([abs(s) for _, s, _ in parsed] + [1e-12])
    half = REASON_WIDTH / 2
    return [
        ReasonBar(words, share, half + min(share, 0) / scale * half, abs(share) / scale * half, was)
        for words, share, was in parsed
    ]


def largest_share(rows: list[dict], columns: list[str]) -> float:
    """The largest |share| among the rows' reasons, so a page's bars share one scale."""
    return max([abs(b.share) for r in rows for b in reason_bars([r[c] for c in columns])] + [0.0])


@dataclass(frozen=True)
class Step:
    label: str
    text: str
    x: float
    width: float
    css: str  # base, up, down or total


@dataclass(frozen=True)
class Waterfall:
    name: str
    title: str
    width: int
    height: int
    zero: float  # x of log-odds 0
    steps: list[Step]
    label_space: int
    row: int = 24


def waterfall(
    name: str,
    title: str,
    base: float,
    shares: list[tuple[str, float]],
    *,
    total_label: str,
    total_text: str = "{:+.2f}",
    shown: int = 10,
    width: int = 760,
    label_space: int = 230,
) -> Waterfall:
    """From the base value, each contribution in turn (largest |share| first; past `shown`, the
    rest as one step) to the total: horizontal, one row per step, in log-odds."""
    ordered = sorted(shares, key=lambda item: -abs(item[1]))
    rest = ordered[shown:]
    if rest:
        ordered = [*ordered[:shown], (f"{len(rest)} other features", sum(s for _, s in rest))]
    ends = [base + sum(s for _, s in ordered[: i + 1]) for i in range(len(ordered))]
    total = ends[-1] if ends else base
    low, high = min([0.0, base, *ends]), max([0.0, base, *ends])
    span, plot = (high - low) or 1.0, width - label_space - 150

    def x(value: float) -> float:
        return label_space + plot * (value - low) / span

    starts = [base, *ends[:-1]]
    steps = [Step("Base value", f"{base:+.2f}", min(x(0), x(base)), abs(x(base) - x(0)), "base")]
    steps += [
        Step(label, f"{share:+.2f}", min(x(a), x(a + share)), abs(x(a + share) - x(a)), css)
        for (label, share), a in zip(ordered, starts, strict=True)
        for css in ["up" if share > 0 else "down"]
    ]
    end = Step(
        total_label, total_text.format(total), min(x(0), x(total)), abs(x(total) - x(0)), "total"
    )
    return Waterfall(
        name, title, width, 24 * (len(steps) + 1) + 30, x(0), [*steps, end], label_space
    )
