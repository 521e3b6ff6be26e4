"""Small inline SVG charts for the run report: lines over time and horizontal bars, no plotting library."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from html import escape

log = logging.getLogger(__name__)

PALETTE = ("#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e")
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 36, 36
Point = tuple[float, float]


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def lines(series: Mapping[str, Sequence[Point]], title: str, y_label: str = "", step: bool = True) -> str:
    """A line chart of named series of (unix time, value) points; `step` draws values that hold until the next."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return _empty(title)
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y1 = max(max(p[1] for p in points), 1.0)
    x1 = x1 if x1 > x0 else x0 + 1
    height = max(HEIGHT, TOP + 18 * len(series) + BOTTOM)  # room for every series in the legend
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - y / y1 * plot_h

    parts = [_axes(title, y_label, y1, sy)]
    for tick in _ticks(x0, x1, 5):
        label = time.strftime("%H:%M:%S", time.gmtime(tick))
        parts.append(f'<text x="{sx(tick):.1f}" y="{height - 12}" text-anchor="middle" class="tick">{label}</text>')
    for i, (name, pts) in enumerate(series.items()):  # in the caller's order: the most important first
        ordered = sorted(pts)
        coords: list[str] = []
        for j, (x, y) in enumerate(ordered):
            if step and j:
                coords.append(f"{sx(x):.1f},{sy(ordered[j - 1][1]):.1f}")
            coords.append(f"{sx(x):.1f},{sy(y):.1f}")
        if step and ordered[-1][0] < x1:  # a value holds until the end of the chart
            coords.append(f"{sx(x1):.1f},{sy(ordered[-1][1]):.1f}")
        parts.append(f'<polyline class="series" fill="none" stroke="{colour(i)}" stroke-width="2" '
                     f'points="{" ".join(coords)}"><title>{escape(name)}</title></polyline>')  # fmt: skip
        for x, y in ordered:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour(i)}">'
                         f"<title>{escape(name)}: {y:g}</title></circle>")  # fmt: skip
        parts.append(_legend(i, name))
    return _svg(title, parts, height)


def bars(items: Sequence[tuple[str, float]], title: str, unit: str = "") -> str:
    """Horizontal bars, one per (label, value), with the value written at the end of each."""
    if not items:
        return _empty(title)
    row = 26
    height = 30 + row * len(items) + 12
    label_w, plot_w = 220, WIDTH - 220 - 90
    top = max(max(v for _, v in items), 1e-9)
    parts = [f'<text x="8" y="18" class="title">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = 30 + i * row
        w = max(1.0, value / top * plot_w) if value > 0 else 0.0
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
                     f'fill="{colour(i)}"><title>{escape(label)}: {_fmt(value, unit)}</title></rect>')  # fmt: skip
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="value">{_fmt(value, unit)}</text>')
    return _svg(title, parts, height)


def _axes(title: str, y_label: str, y1: float, sy: Callable[[float], float]) -> str:
    plot_w = WIDTH - LEFT - RIGHT
    out = [f'<text x="8" y="18" class="title">{escape(title)}</text>']
    for tick in _ticks(0, y1, 4):
        y = sy(tick)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick:g}</text>')
    if y_label:
        out.append(f'<text x="12" y="{TOP + 40}" class="tick" transform="rotate(-90 12 {TOP + 40})" '
                   f'text-anchor="end">{escape(y_label)}</text>')  # fmt: skip
    return "".join(out)


def _legend(index: int, name: str) -> str:
    x, y = WIDTH - RIGHT + 12, TOP + 14 + index * 18
    return (f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour(index)}"/>'
            f'<text x="{x + 16}" y="{y}" class="label">{escape(name[:18])}</text>')  # fmt: skip


def _ticks(lo: float, hi: float, count: int) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    step = max(magnitude * round(raw / magnitude), raw if raw < 1 else 1)
    out, tick = [], lo
    while tick <= hi + 1e-9:
        out.append(round(tick, 6))
        tick += step
    return out


def _fmt(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.2f}"
    if unit == "s":
        return f"{value:,.0f} s" if value >= 10 else f"{value:.1f} s"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _empty(title: str) -> str:
    return _svg(title, [f'<text x="8" y="18" class="title">{escape(title)}</text>',
                        '<text x="8" y="42" class="label">no data yet</text>'], 56)  # fmt: skip


def _svg(title: str, parts: list[str], height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" width="{WIDTH}" '
            f'height="{height}" viewBox="0 0 {WIDTH} {height}">{"".join(parts)}</svg>')  # fmt: skip
