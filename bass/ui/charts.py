"""Pictures of how pipelines have been doing, drawn by the server (no chart library,
nothing run in the browser): a pipeline's build durations (SVG), the home page's strips
of last builds, and the shields-style status badge (SVG). Every value is escaped.

Bars and squares take their colour from the stylesheet (`class="s-STATUS"`, filled
with `var(--c)`); the badge stands alone (a README shows it), so it carries its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

from bass.ui.steps import duration

Build = dict[str, Any]
BuildUrl = Callable[[Build], str]

CHART_WIDTH = 10  # SVG units a bar's slot takes; a bar is 8 wide
CHART_HEIGHT = 60


def build_seconds(build: Build, now: float) -> float | None:
    """How long a build ran (a running one: so far); None before it started."""
    if not build.get("started_at"):
        return None
    return max((build.get("finished_at") or now) - build["started_at"], 0.0)


def seconds_text(seconds: float | None) -> str:
    """A duration as the dashboard writes it (12.3s, 4m 05s), "" for none."""
    if seconds is None:
        return ""
    return duration(1, 1 + int(seconds * 1e9), 0)


def _tip(build: Build, now: float) -> str:
    parts = [f"#{build['number']}", build["state"], seconds_text(build_seconds(build, now))]
    if build.get("branch"):
        parts.append(build["branch"])
    return " · ".join(p for p in parts if p)


def _link(url: str, tip: str, shapes: str) -> str:
    return f'<a href="{escape(url)}"><title>{escape(tip)}</title>{shapes}</a>'


def duration_chart(builds: list[Build], build_url: BuildUrl, now: float, slots: int) -> Markup:
    """Bars of `builds` (newest first, as the store gives them), oldest on the left and
    the newest at the right edge of `slots` places; a bar's height is its build's
    duration against the longest, its colour its state; each bar links to its build
    (its whole column is the link) and says its number, state and duration."""
    shown = list(reversed(builds[:slots]))
    longest = max((build_seconds(b, now) or 0 for b in shown), default=0) or 1
    width, top = slots * CHART_WIDTH, CHART_HEIGHT
    parts = [
        f'<svg class="trend" viewBox="0 0 {width} {top}" preserveAspectRatio="none" '
        f'aria-label="durations of the last {len(shown)} builds">',
        f'<line class="axis" x1="0" y1="{top}" x2="{width}" y2="{top}"></line>',
    ]
    for i, build in enumerate(shown):
        x = (slots - len(shown) + i) * CHART_WIDTH
        seconds = build_seconds(build, now) or 0
        height = max(round(seconds / longest * (top - 4), 2), 2)
        shapes = (
            f'<rect class="hit" x="{x}" y="0" width="{CHART_WIDTH}" height="{top}"></rect>'
            f'<rect class="bar s-{escape(build["state"])}" x="{x + 1}" y="{top - height}" '
            f'width="{CHART_WIDTH - 2}" height="{height}" data-number="{build["number"]:d}">'
            "</rect>"
        )
        parts.append(_link(build_url(build), _tip(build, now), shapes))
    parts.append("</svg>")
    return Markup("".join(parts))


def strip(builds: list[Build], build_url: BuildUrl, now: float) -> Markup:
    """A row of small squares, one a build (newest first in, newest on the right out),
    coloured by state, each a link titled with its number, state and duration. HTML,
    not SVG: in a narrow table cell the squares wrap onto a second line."""
    squares = "".join(
        f'<a class="s-{escape(b["state"])}" href="{escape(build_url(b))}" '
        f'title="{escape(_tip(b, now))}"></a>'
        for b in reversed(builds)
    )
    return Markup(f'<span class="strip" aria-label="last {len(builds)} builds">{squares}</span>')


# -- the status badge ---------------------------------------------------------------------

BADGE_WORDS = {"ok": "passing", "failed": "failing", "timeout": "timed out"}
BADGE_COLOURS = {  # the dashboard's status colours (bass.css), each ≥ 4.5:1 with white
    "ok": "#1a7f37",
    "failed": "#cf222e",
    "timeout": "#9a5700",
    "error": "#8250df",
    "running": "#0969da",
    "cancelled": "#57606a",
}
GREY = "#6e7781"
LABEL_GREY = "#555"
# Verdana at 11px, the badges' font: the widths of narrow and wide letters (px)
_WIDTHS = {**dict.fromkeys("fijlrt.,:;'!|() ", 4.0), **dict.fromkeys("mwMW%@", 10.0)}


def text_width(text: str) -> float:
    """About how wide `text` is in 11px Verdana (the SVG's textLength makes it exact)."""
    return sum(_WIDTHS.get(c, 7.5 if c.isupper() else 6.8) for c in text)


def badge(label: str, message: str, colour: str) -> str:
    """A two-part badge, as shields.io draws them: `label` on grey, `message` on
    `colour`."""
    lw, mw = round(text_width(label)) + 10, round(text_width(message)) + 10
    total = lw + mw
    title = escape(f"{label}: {message}")

    def text(x: float, words: str, width: int) -> str:
        shown = escape(words)
        return (
            f'<text x="{x}" y="15" fill="#010101" fill-opacity=".3" textLength="{width}">'
            f'{shown}</text><text x="{x}" y="14" textLength="{width}">{shown}</text>'
        )

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{LABEL_GREY}"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{escape(colour)}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f"{text(lw / 2, label, lw - 10)}{text(lw + mw / 2, message, mw - 10)}</g></svg>"
    )


def status_badge(state: str | None, *, known: bool = True) -> str:
    """The badge of a build's state ("build | passing"); "no builds" when there is no
    build, "unknown" for a pipeline that does not exist."""
    if not known:
        return badge("build", "unknown", GREY)
    if state is None:
        return badge("build", "no builds", GREY)
    return badge("build", BADGE_WORDS.get(state, state), BADGE_COLOURS.get(state, GREY))
