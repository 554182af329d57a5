"""Loading and rendering the email templates (Jinja2).

The package ships its templates in ``newsletter/templates/email/``. A user's
``[templates] dir`` is searched first, by the same relative name: a file
``<dir>/email/post.html`` replaces the package's ``email/post.html``, anything not
overridden still comes from the package.

Templates an issue uses (names relative to the templates directory):

    email/base.html, email/base.txt      layout: web-view link, masthead, footer
    email/post.html, email/post.txt      one post
    email/digest.html, email/digest.txt  several posts with a table of contents
    email/styles.css                     included into base.html's <style>; inlined once

Every problem with a template (missing, syntax error, unknown variable) raises ContentError
with one line that names the template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from ..config import Settings
from ..errors import ContentError

PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def templates_dir_for(settings: Settings, templates_dir: str | Path | None = None) -> Path | None:
    """The user's template directory: ``templates_dir`` if given, else ``[templates] dir``
    (relative to the config file), else None. Raises ContentError if it does not exist."""
    chosen = templates_dir if templates_dir is not None else settings.templates.dir
    if not chosen:
        return None
    path = Path(settings.base_dir) / Path(chosen).expanduser()
    if not path.is_dir():
        raise ContentError(f"templates directory {path} does not exist")
    return path


def _format_date(value: Any) -> str:
    """``12 March 2026`` for a date/datetime; empty for None."""
    if value is None:
        return ""
    return f"{value.day} {value:%B %Y}"


def make_environment(user_dir: Path | None) -> jinja2.Environment:
    """A Jinja2 environment: user templates first, package templates second, autoescape for
    .html, unknown variables are errors (StrictUndefined)."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(PACKAGE_TEMPLATES)]
    if user_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(user_dir))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["date"] = _format_date
    return env


def render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    """Render template ``name``; any template problem becomes a one-line ContentError."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise ContentError(f"template {exc.name} not found") from exc
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or exc.name or name
        raise ContentError(f"template {where}, line {exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        message = " ".join(str(exc).split())
        raise ContentError(f"template {name}: {message}") from exc
