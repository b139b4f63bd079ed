"""Charts drawn as SVG on the server: bars, lines, a heat-map and an interval (forest) plot.

Each function returns `Markup` for a self-contained `<svg role="img">` with a `<title>` and a
`<desc>` (named by `aria-labelledby`), axes with tick labels, and a data label on every bar,
point or cell. Every data element carries `data-key` and `data-value` (the raw number), so tests
and curious owners can read the exact figures. Colours are presentation attributes, never inline
`style`, so the pages work under a strict Content-Security-Policy. All text is escaped.

The charts scale with their container (`viewBox`, no fixed width); the exact numbers are in the
`<details>` table the page puts next to each chart.
"""
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup, escape

Number = float | int
Fmt = Callable[[float], str]

INK = "#1f2933"
MUTED = "#52606d"
GRID = "#d9e2ec"
BLUE = "#1f5f8b"
TEAL = "#127c71"
RED = "#b42318"
GREEN = "#17753a"
GREY = "#7b8794"
AMBER = "#a05a00"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def pct(value: float | None, digits: int = 0) -> str:
    """0.8123 → "81%" (digits=0) or "81.2%" (digits=1); None → "–"."""
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f}%"


def points(value: float | None, digits: int = 1) -> str:
    """A difference of two rates in percentage points, signed: 0.052 → "+5.2 pts"."""
    if value is None:
        return "–"
    return f"{value * 100:+.{digits}f} pts".replace("-", "−")


def plain(value: float | None) -> str:
    if value is None:
        return "–"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def amount(value: float | None) -> str:
    """A money amount to the cent with thousands separators; None → "–"."""
    return "–" if value is None else f"{value:,.2f}"


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 × 10^k)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10 ** exponent
        if candidate >= value - 1e-12:
            return float(candidate)
    return float(10 ** (exponent + 1))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, content: str, *, size: int = 12, anchor: str = "middle",
          fill: str = INK, weight: str | None = None, cls: str | None = None,
          extra: str = "") -> str:
    attrs = [f'x="{_num(x)}"', f'y="{_num(y)}"', f'font-size="{size}"',
             f'text-anchor="{anchor}"', f'fill="{fill}"']
    if weight:
        attrs.append(f'font-weight="{weight}"')
    if cls:
        attrs.append(f'class="{cls}"')
    if extra:
        attrs.append(extra)
    return f"<text {' '.join(attrs)}>{escape(content)}</text>"


def _frame(chart_id: str, title: str, description: str, width: int, height: int,
           body: list[str], kind: str) -> Markup:
    cid = escape(chart_id)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" '
            f'aria-labelledby="{cid}-title {cid}-desc" data-chart="{cid}" data-kind="{kind}" '
            f'font-family="{FONT}">'
            f'<title id="{cid}-title">{escape(title)}</title>'
            f'<desc id="{cid}-desc">{escape(description)}</desc>')
    return Markup(head + "".join(body) + "</svg>")


def _empty(chart_id: str, title: str, message: str, width: int = 720,
           height: int = 120) -> Markup:
    body = [(f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="6" '
             f'fill="#f5f7fa" stroke="{GRID}"/>'),
            _text(width / 2, height / 2 + 5, message, size=14, fill=MUTED)]
    return _frame(chart_id, title, message, width, height, body, "empty")


def _y_axis(left: float, top: float, plot_w: float, plot_h: float, y_max: float,
            y_format: Fmt, ticks: int = 4) -> list[str]:
    out = []
    for i in range(ticks + 1):
        value = y_max * i / ticks
        y = top + plot_h - plot_h * i / ticks
        out.append(f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + plot_w)}" '
                   f'y2="{_num(y)}" stroke="{GRID}" stroke-width="1"/>')
        out.append(_text(left - 6, y + 4, y_format(value), size=11, anchor="end", fill=MUTED))
    out.append(f'<line x1="{_num(left)}" y1="{_num(top)}" x2="{_num(left)}" '
               f'y2="{_num(top + plot_h)}" stroke="{MUTED}" stroke-width="1"/>')
    out.append(f'<line x1="{_num(left)}" y1="{_num(top + plot_h)}" x2="{_num(left + plot_w)}" '
               f'y2="{_num(top + plot_h)}" stroke="{MUTED}" stroke-width="1"/>')
    return out


def _x_labels(labels: Sequence[str], left: float, band: float, y: float) -> list[str]:
    """Category labels under the axis: every k-th when they are narrow, shortened with "…" when
    one is wider than its band (the full text is in each element's <title> and the table)."""
    every = max(1, math.ceil(52 / max(band, 1)))
    room = max(int(band * every / 6.4), 4)
    out = []
    for i, label in enumerate(labels):
        if i % every:
            continue
        text = label if len(label) <= room else label[:room - 1] + "…"
        out.append(_text(left + band * (i + 0.5), y, text, size=11, fill=MUTED))
    return out


# --- bars ------------------------------------------------------------------------------------------

def bar_chart(*, chart_id: str, title: str, description: str, labels: Sequence[str],
              values: Sequence[Number | None], keys: Sequence[str] | None = None,
              value_format: Fmt = plain, axis_format: Fmt | None = None,
              y_max: float | None = None, tooltips: Sequence[str] | None = None,
              colour: str = BLUE, colours: Sequence[str | None] | None = None,
              width: int = 720, height: int = 260,
              empty_message: str = "No data for this period yet") -> Markup:
    """Vertical bars with a value label on each; None draws no bar and a "–" label.
    `colours` overrides the colour of single bars (e.g. a lighter one for provisional figures)."""
    if not labels:
        return _empty(chart_id, title, empty_message, width)
    keys = list(keys or labels)
    known = [float(v) for v in values if v is not None]
    top_value = y_max if y_max is not None else nice_max(max(known, default=0) * 1.1 or 1)
    axis_format = axis_format or value_format
    left, right, top, bottom = 56, 12, 22, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    band = plot_w / len(labels)
    bar_w = max(min(band * 0.68, 64), 2)
    body = _y_axis(left, top, plot_w, plot_h, top_value, axis_format)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = left + band * (i + 0.5)
        tip = tooltips[i] if tooltips else f"{label}: {value_format(value) if value is not None else 'no data'}"
        raw = "" if value is None else repr(float(value))
        group = [f'<g class="bar" data-key="{escape(keys[i])}" data-value="{escape(raw)}">',
                 f"<title>{escape(tip)}</title>"]
        if value is None:
            group.append(_text(cx, top + plot_h - 6, "–", size=12, fill=MUTED,
                               cls="data-label"))
        else:
            h = plot_h * min(max(float(value), 0.0) / top_value, 1.0)
            y = top + plot_h - h
            group.append(f'<rect x="{_num(cx - bar_w / 2)}" y="{_num(y)}" '
                         f'width="{_num(bar_w)}" height="{_num(max(h, 0.5))}" rx="2" '
                         f'fill="{(colours[i] if colours and colours[i] else colour)}"/>')
            group.append(_text(cx, max(y - 5, top - 6), value_format(float(value)), size=11,
                               weight="600", cls="data-label"))
        group.append("</g>")
        body.extend(group)
    body.extend(_x_labels(labels, left, band, height - bottom + 16))
    return _frame(chart_id, title, description, width, height, body, "bar")


# --- lines -----------------------------------------------------------------------------------------

@dataclass
class Series:
    name: str
    values: Sequence[Number | None]
    colour: str = BLUE
    dashed: bool = False


def line_chart(*, chart_id: str, title: str, description: str, labels: Sequence[str],
               series: Sequence[Series], value_format: Fmt = plain,
               axis_format: Fmt | None = None, y_max: float | None = None,
               show_values: bool = True, width: int = 720, height: int = 260,
               empty_message: str = "No data for this period yet") -> Markup:
    """One line per series over shared labels; gaps where a value is None; a legend on top."""
    if not labels or not series:
        return _empty(chart_id, title, empty_message, width)
    known = [float(v) for s in series for v in s.values if v is not None]
    if not known:
        return _empty(chart_id, title, empty_message, width)
    top_value = y_max if y_max is not None else nice_max(max(known) * 1.1 or 1)
    axis_format = axis_format or value_format
    left, right, top, bottom = 56, 12, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    band = plot_w / len(labels)
    body = _y_axis(left, top, plot_w, plot_h, top_value, axis_format)
    legend_x = left
    for s in series:
        body.append(f'<rect x="{_num(legend_x)}" y="8" width="14" height="4" fill="{s.colour}"/>')
        body.append(_text(legend_x + 20, 14, s.name, size=12, anchor="start"))
        legend_x += 30 + 7.2 * len(s.name)
    for index, s in enumerate(series):
        coords = []
        for i, value in enumerate(s.values):
            if value is None:
                coords.append(None)
                continue
            x = left + band * (i + 0.5)
            y = top + plot_h - plot_h * min(max(float(value), 0.0) / top_value, 1.0)
            coords.append((x, y, float(value)))
        segment: list[str] = []
        segments: list[list[str]] = []
        for c in coords:
            if c is None:
                if segment:
                    segments.append(segment)
                segment = []
            else:
                segment.append(f"{_num(c[0])},{_num(c[1])}")
        if segment:
            segments.append(segment)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for seg in segments:
            body.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{s.colour}" '
                        f'stroke-width="2.5"{dash}/>')
        for i, c in enumerate(coords):
            if c is None:
                continue
            x, y, value = c
            body.append(f'<g class="point" data-series="{escape(s.name)}" '
                        f'data-key="{escape(labels[i])}" data-value="{value!r}">'
                        f"<title>{escape(f'{s.name}, {labels[i]}: {value_format(value)}')}"
                        f"</title>"
                        f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{s.colour}"/>')
            if show_values:
                dy = -8 if index % 2 == 0 else 16
                body.append(_text(x, y + dy, value_format(value), size=10, fill=s.colour,
                                  cls="data-label"))
            body.append("</g>")
    body.extend(_x_labels(labels, left, band, height - bottom + 16))
    return _frame(chart_id, title, description, width, height, body, "line")


# --- heat-map --------------------------------------------------------------------------------------

def _ramp(value: float) -> str:
    """White → deep teal, by share in [0, 1]."""
    value = min(max(value, 0.0), 1.0)
    low, high = (240, 247, 246), (11, 83, 76)
    rgb = [round(a + (b - a) * value) for a, b in zip(low, high, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def ink_on(fill: str) -> str:
    """Black or white text, whichever contrasts more with `fill` (always at least 4.5:1)."""
    return "#000000" if _luminance(fill) > 0.179 else "#ffffff"


def heatmap(*, chart_id: str, title: str, description: str, row_labels: Sequence[str],
            col_labels: Sequence[str], cells: Sequence[Sequence[float | None]],
            row_notes: Sequence[str] | None = None, value_format: Fmt = pct,
            width: int = 720, empty_message: str = "No cohorts in this period yet") -> Markup:
    """Rows × columns of shares in [0, 1]; a missing cell (None, or a short row) stays blank."""
    if not row_labels or not col_labels:
        return _empty(chart_id, title, empty_message, width)
    left, top, right = 120, 44, 8
    cell_w = max(min((width - left - right) / len(col_labels), 64), 18)
    cell_h = 24
    width = int(left + cell_w * len(col_labels) + right)
    height = int(top + cell_h * len(row_labels) + 36)
    body = [_text(left + cell_w * len(col_labels) / 2, 14, "months since joining", size=11,
                  fill=MUTED)]
    for j, label in enumerate(col_labels):
        body.append(_text(left + cell_w * (j + 0.5), top - 8, label, size=11, fill=MUTED))
    for i, label in enumerate(row_labels):
        y = top + cell_h * i
        note = f" ({row_notes[i]})" if row_notes else ""
        body.append(_text(left - 8, y + cell_h / 2 + 4, f"{label}{note}", size=11,
                          anchor="end"))
        row = cells[i] if i < len(cells) else []
        for j in range(len(col_labels)):
            value = row[j] if j < len(row) else None
            x = left + cell_w * j
            if value is None:
                body.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(cell_w - 2)}" '
                            f'height="{cell_h - 2}" fill="#f5f7fa"/>')
                continue
            fill = _ramp(float(value))
            ink = ink_on(fill)
            body.append(f'<g class="cell" data-key="{escape(label)}:{j}" '
                        f'data-value="{float(value)!r}">'
                        f"<title>{escape(f'{label}, month {j}: {value_format(value)}')}</title>"
                        f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(cell_w - 2)}" '
                        f'height="{cell_h - 2}" fill="{fill}"/>'
                        + (_text(x + (cell_w - 2) / 2, y + cell_h / 2 + 3,
                                 value_format(value), size=10, fill=ink, cls="data-label")
                           if cell_w >= 30 else "")
                        + "</g>")
    legend_y = top + cell_h * len(row_labels) + 14
    body.append(_text(left, legend_y + 10, "share still a member:", size=11, anchor="start",
                      fill=MUTED))
    for k, share in enumerate((0, 0.25, 0.5, 0.75, 1)):
        x = left + 140 + k * 56
        body.append(f'<rect x="{x}" y="{legend_y}" width="14" height="12" fill="{_ramp(share)}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(x + 18, legend_y + 10, pct(share), size=11, anchor="start",
                          fill=MUTED))
    return _frame(chart_id, title, description, width, height, body, "heatmap")


# --- intervals (forest plot) -------------------------------------------------------------------

@dataclass
class Interval:
    key: str
    label: str
    estimate: float | None
    low: float | None
    high: float | None
    verdict: str


VERDICT_COLOURS = {"lifts renewals": GREEN, "lowers renewals": RED}
VERDICT_TEXT = {"lifts renewals": GREEN, "lowers renewals": RED}  # others: MUTED (AA contrast)


def interval_chart(*, chart_id: str, title: str, description: str, rows: Sequence[Interval],
                   value_format: Fmt = points, width: int = 720,
                   empty_message: str = "No touchpoints to compare yet",
                   interval_name: str = "95% interval") -> Markup:
    """One row per item: the estimate as a dot, its interval (95 % unless `interval_name` says
    otherwise) as a bar, a zero line; the verdict in words at the right. Rows without an
    estimate show their verdict only."""
    if not rows:
        return _empty(chart_id, title, empty_message, width)
    label_w = min(max(int(width * 0.3), 170), 320)
    verdict_w, top, row_h = 200, 30, 28
    max_chars = int((label_w - 12) / 7)
    plot_l, plot_r = label_w, width - verdict_w
    extent = [abs(v) for r in rows for v in (r.low, r.high, r.estimate) if v is not None]
    half = nice_max(max(extent, default=0.2) * 1.05 or 0.2)
    half = min(half, 1.0)
    height = top + row_h * len(rows) + 30

    def sx(value: float) -> float:
        return plot_l + (value + half) / (2 * half) * (plot_r - plot_l)

    body = []
    for tick in (-half, -half / 2, 0.0, half / 2, half):
        x = sx(tick)
        body.append(f'<line x1="{_num(x)}" y1="{top - 6}" x2="{_num(x)}" '
                    f'y2="{top + row_h * len(rows)}" stroke="{MUTED if tick == 0 else GRID}" '
                    f'stroke-width="{1.5 if tick == 0 else 1}"/>')
        body.append(_text(x, height - 10, value_format(tick).replace(" pts", ""), size=11,
                          fill=MUTED))
    body.append(_text(plot_l, 14, "← fewer renewals than the held-out group", size=11,
                      anchor="start", fill=MUTED))
    body.append(_text(plot_r, 14, "more renewals →", size=11, anchor="end", fill=MUTED))
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        colour = VERDICT_COLOURS.get(r.verdict, GREY)
        raw = "" if r.estimate is None else repr(float(r.estimate))
        parts = [(f'<g class="interval" data-key="{escape(r.key)}" data-value="{escape(raw)}" '
                  f'data-low="{"" if r.low is None else repr(float(r.low))}" '
                  f'data-high="{"" if r.high is None else repr(float(r.high))}" '
                  f'data-verdict="{escape(r.verdict)}">')]
        tip = (f"{r.label}: {value_format(r.estimate)} ({interval_name} "
               f"{value_format(r.low)} to {value_format(r.high)}) — {r.verdict}")
        parts.append(f"<title>{escape(tip)}</title>")
        label = r.label if len(r.label) <= max_chars else r.label[:max_chars - 1] + "…"
        parts.append(_text(plot_l - 8, y + 4, label, size=12, anchor="end"))
        if r.low is not None and r.high is not None:
            parts.append(f'<line x1="{_num(sx(max(r.low, -half)))}" y1="{_num(y)}" '
                         f'x2="{_num(sx(min(r.high, half)))}" y2="{_num(y)}" '
                         f'stroke="{colour}" stroke-width="3" stroke-linecap="round"/>')
        if r.estimate is not None:
            parts.append(f'<circle cx="{_num(sx(max(min(r.estimate, half), -half)))}" '
                         f'cy="{_num(y)}" r="5" fill="{colour}"/>')
            x = sx(max(min(r.estimate, half), -half))
            anchor = "start" if x < plot_l + 30 else ("end" if x > plot_r - 30 else "middle")
            parts.append(_text(x, y - 8, value_format(r.estimate), size=10,
                               fill=VERDICT_TEXT.get(r.verdict, MUTED), anchor=anchor,
                               cls="data-label"))
        parts.append(_text(plot_r + 10, y + 4, r.verdict, size=12, anchor="start",
                           fill=VERDICT_TEXT.get(r.verdict, MUTED), weight="600",
                           cls="verdict"))
        parts.append("</g>")
        body.extend(parts)
    return _frame(chart_id, title, description, width, height, body, "interval")


# --- a chart from a spec -----------------------------------------------------------------------------

COLOURS = {"blue": BLUE, "teal": TEAL, "red": RED, "green": GREEN, "amber": AMBER, "grey": GREY}
FORMATS: dict[str, Fmt] = {"plain": plain, "money": amount, "share": pct}


def _number(value):
    """Decimal → float for drawing; counts stay whole, None stays a gap."""
    return float(value) if isinstance(value, Decimal) else value


def from_spec(spec, report, **size) -> Markup:
    """The chart a spec describes (`app.analytics.money_figures.Chart`: kind, title, the rows it
    draws of `report`, their labels, its lines and how values read), drawn from `report`;
    `size`: width and height as the charts take them."""
    rows = spec.rows(report)
    title = spec.title_of(rows) if spec.title_of and rows else spec.title
    labels = [spec.label(row) for row in rows]
    share = {"y_max": 1.0} if spec.values == "share" else {}
    common = {"chart_id": spec.chart_id, "title": title, "description": spec.description,
              "labels": labels, "value_format": FORMATS[spec.values], **share, **size}
    if spec.kind == "bar":
        line = spec.lines[0]
        return bar_chart(values=[_number(line.value(row)) for row in rows],
                         colour=COLOURS[line.colour], **common)
    return line_chart(series=[Series(line.name, [_number(line.value(row)) for row in rows],
                                     COLOURS[line.colour], line.dashed)
                              for line in spec.lines], **common)
