"""Inline SVG charts (no JavaScript, no external asset). Every label is escaped.

Charts scale with their container (``viewBox`` + ``width=100%``); tooltips are SVG
``<title>`` elements, which browsers show on hover without any script. Series after the first
are hatched as well as coloured, and the legend names each one, so no chart is read by colour
alone. The result is ``Markup`` for the templates (everything in it was escaped here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from html import escape

from markupsafe import Markup

ACCEPTED = "#2f855a"
REFUSED = "#b42323"
BAR = "#1f6fb2"
GRID = "#e2e6eb"
AXIS = "#9aa5b1"
TEXT = "#5f6b7a"
INK = "#1d2733"


def nice_scale(value: float, ticks: int = 4) -> tuple[float, float]:
    """A round top of the axis (>= value) and its tick step: steps of 1, 2 or 5 × 10^k."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if step * ticks >= value:
            break
    if step < 1:  # counts: whole numbers only
        step = 1.0
    top = step * math.ceil(value / step)
    return top, step


def esc(value) -> str:
    return "" if value is None else escape(str(value), quote=True)


def _num(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.1f}"


def _wrap(svg_body: str, width: int, height: int, label: str) -> Markup:
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{esc(label)}" '
            f'font-family="inherit" font-size="12">'
            f"<title>{esc(label)}</title>{svg_body}</svg>")


@dataclass
class Bar:
    label: str
    value: int
    note: str = ""  # shown under the label (e.g. the meaning of a reason code)


def hbar_chart(bars: list[Bar], *, label: str, width: int = 600, color: str = BAR, fmt=str,
               empty: str = "nothing to show") -> Markup:
    """Horizontal bars, one row per item: label and note above, the bar and its value below."""
    row = 46
    top_pad, left, right = 6, 4, 56
    height = top_pad + max(1, len(bars)) * row + 4
    if not bars:
        body = (f'<text x="{width / 2}" y="{height / 2 + 10}" text-anchor="middle" fill="{TEXT}">'
                f"{esc(empty)}</text>")
        return _wrap(body, width, 52, label)
    top, _ = nice_scale(max(b.value for b in bars))
    span = width - left - right
    parts = []
    for i, b in enumerate(bars):
        y = top_pad + i * row
        w = max(2.0, span * b.value / top) if b.value else 0
        room = int((span + right - 8) / 6.6) - int(len(b.label) * 1.12) - 3  # characters left for the note
        shown = b.note if len(b.note) <= room else b.note[: max(0, room - 1)].rstrip() + "…"
        note = f' <tspan fill="{TEXT}">— {esc(shown)}</tspan>' if b.note and room > 8 else ""
        parts.append(
            f"<g><title>{esc(b.label)}: {esc(fmt(b.value))}{(' — ' + esc(b.note)) if b.note else ''}</title>"
            f'<text x="{left}" y="{y + 14}" fill="{INK}" font-weight="600">{esc(b.label)}{note}</text>'
            f'<rect x="{left}" y="{y + 21}" width="{span}" height="14" rx="3" fill="#edf1f5"/>'
            f'<rect x="{left}" y="{y + 21}" width="{w:.1f}" height="14" rx="3" fill="{color}"/>'
            f'<text x="{left + span + 8}" y="{y + 32}" fill="{INK}" font-weight="600">{esc(fmt(b.value))}</text></g>')
    return _wrap("".join(parts), width, height, label)


@dataclass
class Slot:
    label: str  # axis label, e.g. "12:30" (empty: none; with label_every > 1, every that many slots)
    tooltip: str
    values: tuple[int, ...]  # stacked, bottom first


def stacked_columns(slots: list[Slot], *, series: tuple[tuple[str, str], ...], label: str,
                    width: int = 1180, height: int = 260, label_every: int = 10, y_title: str = "",
                    empty: str = "") -> Markup:
    """Stacked columns over time with a y axis (gridlines, round ticks), x labels and a legend."""
    left, right, top_m, bottom = 48, 14, 30, 34
    pw, ph = width - left - right, height - top_m - bottom
    peak = max((sum(s.values) for s in slots), default=0)
    top, step = nice_scale(max(peak, 1))
    parts = []
    fills = []
    for i, (_name, color) in enumerate(series):
        if i == 0:
            fills.append(color)
            continue
        parts.append(f'<defs><pattern id="hatch{i}" width="6" height="6" patternUnits="userSpaceOnUse" '
                     f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{color}"/>'
                     f'<line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern></defs>')
        fills.append(f"url(#hatch{i})")
    # grid and y axis labels
    n = int(round(top / step))
    for k in range(n + 1):
        v = k * step
        y = top_m + ph - ph * v / top
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                     f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT}">{_num(v)}</text>')
    if y_title:
        parts.append(f'<text x="{left}" y="{top_m - 14}" fill="{TEXT}">{esc(y_title)}</text>')
    # legend (top right)
    lx = left + pw
    for (name, _color), fill in reversed(list(zip(series, fills))):
        tw = 8 + 7 * len(name)
        lx -= tw + 18
        parts.append(f'<rect x="{lx}" y="{top_m - 24}" width="11" height="11" rx="2" fill="{fill}"/>'
                     f'<text x="{lx + 16}" y="{top_m - 14}" fill="{INK}">{esc(name)}</text>')
    slot_w = pw / max(1, len(slots))
    bar_w = max(1.0, slot_w * 0.72)
    for i, s in enumerate(slots):
        x = left + i * slot_w + (slot_w - bar_w) / 2
        base = top_m + ph
        bars = []
        for fill, v in zip(fills, s.values):
            if v <= 0:
                continue
            h = ph * v / top
            base -= h
            bars.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{fill}"/>')
        # a full-height transparent hit area so the tooltip works on empty minutes too
        parts.append(f"<g><title>{esc(s.tooltip)}</title>"
                     f'<rect x="{left + i * slot_w:.1f}" y="{top_m}" width="{slot_w:.1f}" height="{ph}" '
                     f'fill="transparent"/>{"".join(bars)}</g>')
        if s.label and (label_every <= 1 or i % label_every == 0 or i == len(slots) - 1):
            cx = left + i * slot_w + slot_w / 2
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top_m + ph}" y2="{top_m + ph + 4}" stroke="{AXIS}"/>'
                         f'<text x="{cx:.1f}" y="{top_m + ph + 18}" text-anchor="middle" fill="{TEXT}">'
                         f"{esc(s.label)}</text>")
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{top_m + ph}" y2="{top_m + ph}" stroke="{AXIS}"/>')
    if peak == 0 and empty:
        parts.append(f'<text x="{left + pw / 2}" y="{top_m + ph / 2}" text-anchor="middle" fill="{TEXT}">'
                     f"{esc(empty)}</text>")
    return _wrap("".join(parts), width, height, label)
