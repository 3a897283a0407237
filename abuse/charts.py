"""A server-rendered SVG sparkline of a key's Z-scores: a chart with no script and no CDN."""

from __future__ import annotations

from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString

_WIDTH, _HEIGHT = 360, 80


def score_sparkline(history: list[list[float]]) -> SafeString:
    """`history` is [[epoch, rate, z], …]; draws z with the flag threshold as a dashed line."""
    scores = [point[2] for point in history]
    threshold = settings.ABUSE_ZSCORE_THRESHOLD
    top = max(max(scores), threshold * 1.5, 1.0)
    bottom = min(min(scores), -threshold)
    span = top - bottom

    def y(value: float) -> float:
        return round(_HEIGHT - (value - bottom) / span * _HEIGHT, 1)

    step = _WIDTH / max(1, len(scores) - 1)
    points = " ".join(f"{round(i * step, 1)},{y(z)}" for i, z in enumerate(scores))
    return format_html(
        '<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="anomaly score">'
        '<line x1="0" x2="{w}" y1="{t}" y2="{t}" stroke="#ba2121" stroke-dasharray="4 3"/>'
        '<polyline fill="none" stroke="#417690" stroke-width="1.5" points="{p}"/></svg>'
        '<div>last z = {last}; dashed line: threshold {threshold}</div>',
        w=_WIDTH, h=_HEIGHT, t=y(threshold), p=points, last=f"{scores[-1]:.2f}", threshold=threshold,
    )
