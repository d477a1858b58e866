"""Line charts as inline SVG, drawn on the server (no script, no chart library)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 360, 110, 28


def line_chart(values: Sequence[float | None], title: str, unit: str, fixed_max: float | None = None) -> Markup:
    """One minute per point, oldest first; gaps (None) break the line. The SVG has a title and a
    text summary for screen readers."""
    known = [v for v in values if v is not None]
    top = fixed_max if fixed_max is not None else (max(known) if known else 0) or 1
    step = (WIDTH - PAD - 4) / max(1, len(values) - 1)
    paths, current = [], []
    for i, value in enumerate(values):
        if value is None:
            if current:
                paths.append(current)
            current = []
            continue
        x = PAD + i * step
        y = HEIGHT - 16 - (value / top) * (HEIGHT - 24)
        current.append(f"{x:.1f},{y:.1f}")
    if current:
        paths.append(current)
    lines = "".join(f'<polyline class="series" points="{" ".join(p)}"/>' if len(p) > 1 else
                    f'<circle class="dot" cx="{p[0].split(",")[0]}" cy="{p[0].split(",")[1]}" r="2"/>' for p in paths)
    last = next((v for v in reversed(values) if v is not None), None)
    summary = f"{title}; peak {max(known):.2f} {unit}, latest {last:.2f} {unit}" if known else f"{title}: no data"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(summary)}">'
        f"<title>{escape(summary)}</title>"
        f'<line class="axis" x1="{PAD}" y1="{HEIGHT - 16}" x2="{WIDTH - 4}" y2="{HEIGHT - 16}"/>'
        f'<text class="tick" x="2" y="12">{top:.3g}</text><text class="tick" x="2" y="{HEIGHT - 16}">0</text>'
        f'<text class="tick" x="{PAD}" y="{HEIGHT - 2}">−60 min</text>'
        f'<text class="tick" x="{WIDTH - 30}" y="{HEIGHT - 2}">now</text>{lines}</svg>')
