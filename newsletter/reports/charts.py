"""The reports' charts, drawn by matplotlib and returned as SVG to put inline in a page.

Each function takes plain numbers and returns one ``<svg>`` element as text. Nothing is
fetched when a page shows them: text is drawn as paths (``svg.fonttype = "path"``, with
matplotlib's own font), the XML prolog and namespace declarations are dropped (an HTML
parser needs neither), and every id is prefixed with the chart's name, so that several
charts in one page never share one. Labels are plain text (mathtext off): a subject with
"$" in it is drawn as written. Only figures are used, never pyplot's global state.

Importing this module imports matplotlib (the ``reports`` extra); see reports/__init__.py.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from html import escape

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

PEOPLE = "#2f6db5"
MACHINES = "#d9822b"
GROWTH = {"new": "#2f6db5", "confirmed": "#3a9a5b", "unsubscribed": "#d9822b", "bounced": "#b83b3b"}
FUNNEL = (PEOPLE, PEOPLE, "#3a9a5b", MACHINES)  # sent, delivered, clicked, unsubscribed
INK = "#333333"

_STYLE = {
    "svg.fonttype": "path",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib: the same text everywhere
    "font.size": 9,
    "text.parse_math": False,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#999999",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
}
_NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def funnel(steps: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars, the first step on top, each with its count and share of the first."""
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": "funnel"}):
        fig = Figure(figsize=(7.5, 0.45 * len(steps) + 0.6))
        ax = fig.add_subplot()
        labels = [label for label, _ in steps]
        values = [n for _, n in steps]
        colours = [FUNNEL[i % len(FUNNEL)] for i in range(len(steps))]
        bars = ax.barh(labels, values, color=colours)
        ax.invert_yaxis()
        first = values[0] if values else 0
        ax.bar_label(
            bars, labels=[f" {n:,}" + (f" ({n / first:.1%})" if first else "") for n in values]
        )
        ax.set_xlim(0, max([*values, 1]) * 1.25)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
        return _svg(fig, "funnel", "Funnel: " + ", ".join(labels))


def clicks_by_hour(people: Sequence[int], machines: Sequence[int]) -> str:
    """Clicks per hour after sending began: people's and machines' as stacked bars."""
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": "hourly"}):
        fig = Figure(figsize=(7.5, 2.8))
        ax = fig.add_subplot()
        hours = range(len(people))
        ax.bar(hours, people, width=0.9, color=PEOPLE, label="people")
        ax.bar(hours, machines, width=0.9, bottom=people, color=MACHINES, label="machines")
        ax.set_xlim(-1, len(people))
        ax.set_xticks(range(0, len(people) + 1, 6))
        ax.set_xlabel("hours after sending began")
        ax.set_ylabel("clicks")
        _counts_axis(ax, [p + m for p, m in zip(people, machines, strict=True)])
        ax.legend(loc="upper right")
        return _svg(fig, "hourly", "Clicks per hour, people and machines")


def people_and_machines(people: int, rules: Mapping[str, int]) -> str:
    """People's clicks beside what each rule took for a machine."""
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": "machines"}):
        labels = ["people", *(f"machine: {rule}" for rule in rules)]
        values = [people, *rules.values()]
        fig = Figure(figsize=(7.5, 0.4 * len(labels) + 0.6))
        ax = fig.add_subplot()
        bars = ax.barh(labels, values, color=[PEOPLE] + [MACHINES] * len(rules))
        ax.invert_yaxis()
        ax.bar_label(bars, labels=[f" {n:,}" for n in values])
        ax.set_xlim(0, max([*values, 1]) * 1.15)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="y", length=0)
        return _svg(fig, "machines", "Clicks by people and by machines, per rule")


def growth(weeks: Sequence[str], series: Mapping[str, Sequence[int]]) -> str:
    """Grouped bars per week, one colour for each of new, confirmed, unsubscribed, bounced."""
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": "growth"}):
        fig = Figure(figsize=(7.5, 3))
        ax = fig.add_subplot()
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            offset = (i - (len(series) - 1) / 2) * width
            ax.bar([x + offset for x in range(len(weeks))], values, width=width,
                   color=GROWTH.get(name, INK), label=name)  # fmt: skip
        step = max(1, -(-len(weeks) // 12))  # at most a dozen labels
        ax.set_xticks(range(0, len(weeks), step), weeks[::step], rotation=30, ha="right")
        ax.set_ylabel("subscribers")
        _counts_axis(ax, [v for values in series.values() for v in values])
        ax.legend(loc="upper left", ncols=len(series))
        return _svg(fig, "growth", "List growth per week")


def click_rates(labels: Sequence[str], rates: Sequence[float]) -> str:
    """One bar per issue: the share of delivered messages a person clicked in."""
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": "rates"}):
        fig = Figure(figsize=(7.5, 2.8))
        ax = fig.add_subplot()
        bars = ax.bar(range(len(labels)), rates, width=0.6, color=PEOPLE)
        ax.bar_label(bars, labels=[f"{r:.1%}" for r in rates], fontsize=8)
        step = max(1, -(-len(labels) // 20))
        ax.set_xticks(range(0, len(labels), step), labels[::step])
        ax.set_xlabel("issue")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, max([*rates, 0.01]) * 1.2)
        return _svg(fig, "rates", "Click rate per issue")


def _counts_axis(ax, values: Sequence[int]) -> None:
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max([*values, 1]) * 1.15)


def _svg(fig: Figure, name: str, label: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=_NO_METADATA)
    return inline(buffer.getvalue(), name, label)


_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_NAMESPACES = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_IDS = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def inline(svg: str, prefix: str, label: str) -> str:
    """matplotlib's SVG document as an element for an HTML page (see the module doc), its
    ids prefixed with ``prefix``, ``label`` (our own text, not user data) for screen
    readers."""
    svg = _PROLOG.sub("", svg, count=1)
    head, _, rest = svg.partition(">")
    svg = _NAMESPACES.sub("", head) + ">" + rest
    svg = _IDS.sub(lambda m: f"{m[1]}{prefix}-{m[2]}", svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
