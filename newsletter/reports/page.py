"""The reports as one self-contained HTML file each: the issue's and the list's.

The pages are Jinja2 templates (reports/templates/) with autoescape on: subjects, URLs and
replies are user data and are only ever escaped. Their charts are inline SVG from
``charts`` (marked safe: matplotlib writes them and escapes their text). A page loads
nothing: no scripts, fonts, images or styles from elsewhere, and a Content-Security-Policy
that forbids any, so a link that slipped in cannot be fetched either. Links in the tables
are ``<a>`` only for http(s) URLs, plain text otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..errors import InvalidInputError, NewsletterError
from ..tracking.robots import NOT_CLICKS
from .issue import RULES, IssuePage
from .stats import ListStats

INSTALL_HINT = "the HTML reports need matplotlib: pip install 'newsletter[reports]'"


def _charts() -> ModuleType:
    """The charts module; NewsletterError (how to install it) without the reports extra."""
    try:
        import matplotlib  # noqa: F401  (the extra, checked before charts imports it)
    except ImportError as exc:
        raise NewsletterError(INSTALL_HINT) from exc
    from . import charts

    return charts


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("newsletter.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["web_link"] = lambda url: url.lower().startswith(("https://", "http://"))
    env.filters["when"] = lambda t: t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "-"
    env.filters["share"] = lambda n, of: f"{n / of:.1%}" if of else "-"
    return env


def issue_html(page: IssuePage, *, generated: datetime | None = None) -> str:
    """The issue's report page (``generated``: the time it says it was made, default now).
    Raises NewsletterError without the reports extra."""
    charts = _charts()
    report = page.report
    clicks = report.clicks
    machine_rules = {r: n for r, n in clicks.filtered.items() if r not in NOT_CLICKS}
    figures = {
        "funnel": charts.funnel(page.funnel),
        "hourly": charts.clicks_by_hour(page.people_by_hour, page.machines_by_hour)
        if report.started_at
        else None,
        "machines": charts.people_and_machines(clicks.total, machine_rules)
        if clicks.total or machine_rules
        else None,
    }
    return _render(
        "issue.html",
        title=f"Issue {report.id}: {report.subject}",
        page=page,
        report=report,
        figures={k: Markup(v) if v else None for k, v in figures.items()},
        rules=RULES,
        generated=generated or datetime.now(UTC),
    )


def stats_html(stats: ListStats, *, generated: datetime | None = None) -> str:
    """The list's report page, like ``issue_html``."""
    charts = _charts()
    weeks = stats.weeks
    growth = {
        name: [getattr(w, name) for w in weeks]
        for name in ("new", "confirmed", "unsubscribed", "bounced")
    }
    rated = [i for i in stats.issues if i.click_rate is not None]
    figures = {
        "growth": charts.growth([w.week for w in weeks], growth) if weeks else None,
        "rates": charts.click_rates([f"#{i.id}" for i in rated], [i.click_rate for i in rated])
        if rated
        else None,
    }
    return _render(
        "stats.html",
        title="Newsletter statistics",
        stats=stats,
        figures={k: Markup(v) if v else None for k, v in figures.items()},
        generated=generated or datetime.now(UTC),
    )


def _render(template: str, **values: Any) -> str:
    return _environment().get_template(template).render(**values)


def save(path: Path, html: str) -> int:
    """Write a page to ``path``; its size in bytes. InvalidInputError if it cannot be."""
    data = html.encode("utf-8")
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return len(data)
