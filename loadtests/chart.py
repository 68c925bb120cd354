"""Latency over time as an inline SVG: per-second p50/p95/p99 and the objectives as dashed lines."""
import math

from markupsafe import Markup, escape

WIDTH, HEIGHT, MARGIN = 760, 280, 48
SERIES_COLOURS = {"p50": "#4c78a8", "p95": "#f58518", "p99": "#e45756"}


def percentile(sorted_values, fraction):
    """The nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def per_second(latency_ms_by_second):
    """Rows (second, p50, p95, p99, count) for every second that saw a request, in order."""
    rows = []
    for second in sorted(latency_ms_by_second):
        values = sorted(latency_ms_by_second[second])
        rows.append((second, *(percentile(values, f) for f in (0.5, 0.95, 0.99)), len(values)))
    return rows


def latency_svg(rows, objectives_ms):
    """An SVG element: the per-second percentiles of `rows`, and a dashed line per objective."""
    if not rows:
        return Markup('<p class="empty">No predictions were recorded.</p>')
    last_second = max(rows[-1][0], 1)
    top = max([max(r[3] for r in rows), *objectives_ms.values()]) * 1.1 or 1

    def x(second):
        return MARGIN + (WIDTH - 2 * MARGIN) * second / last_second

    def y(ms):
        return HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * ms / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="prediction latency per second">',
             f'<line x1="{MARGIN}" y1="{y(0):.1f}" x2="{WIDTH - MARGIN}" y2="{y(0):.1f}" stroke="#888"/>',
             f'<line x1="{MARGIN}" y1="{y(0):.1f}" x2="{MARGIN}" y2="{MARGIN}" stroke="#888"/>',
             f'<text x="{MARGIN}" y="{MARGIN - 8}" font-size="11">{top:.0f} ms</text>',
             f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - MARGIN + 16}" font-size="11" text-anchor="end">'
             f'{last_second} s</text>']
    for name, ms in objectives_ms.items():
        parts.append(f'<line x1="{MARGIN}" y1="{y(ms):.1f}" x2="{WIDTH - MARGIN}" y2="{y(ms):.1f}" '
                     f'stroke="{SERIES_COLOURS.get(name, "#000")}" stroke-dasharray="6 4"/>'
                     f'<text x="{WIDTH - MARGIN + 4}" y="{y(ms) + 4:.1f}" font-size="11">'
                     f'{escape(name)} objective</text>')
    for column, name in enumerate(("p50", "p95", "p99"), start=1):
        points = " ".join(f"{x(r[0]):.1f},{y(r[column]):.1f}" for r in rows)
        parts.append(f'<polyline fill="none" stroke="{SERIES_COLOURS[name]}" stroke-width="1.5" '
                     f'points="{points}"><title>{name}</title></polyline>')
    legend = "".join(f'<text x="{MARGIN + 70 * i}" y="{HEIGHT - 10}" font-size="12" fill="{colour}">{name}</text>'
                     for i, (name, colour) in enumerate(SERIES_COLOURS.items()))
    parts.append(legend + "</svg>")
    return Markup("".join(parts))
