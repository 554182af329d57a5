"""`newsletter check`: is everything in place to send? One line per check, with the fix.

Each check returns a ``Check`` (ok, warning or failure) and never raises: a problem found is
the result, not an error. Nothing is sent and nothing in the store changes.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine

from .compose import IssueContent, PostView, prepare_issue
from .config import Settings, SmtpSettings, database_url
from .content import fetch_feed, parse_feed
from .errors import NewsletterError
from .store import current_revision, head_revision
from .store.engine import mask_password, open_database, sqlite_path
from .store.models import utcnow

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str


def check_database(settings: Settings) -> tuple[Check, Engine | None]:
    url = database_url(settings)
    try:
        engine = open_database(url)  # never creates a missing SQLite file
        current, head = current_revision(engine), head_revision()
    except NewsletterError as exc:
        fix = "" if "database.url" in str(exc) else " (check database.url)"
        return Check("database", "fail", f"{exc}{fix}"), None
    if current != head:
        where = "empty" if current is None else f"at revision {current}"
        fix = f"schema is {where}, this version needs {head}: run `newsletter db upgrade`"
        return Check("database", "fail", fix), engine
    return Check("database", "ok", f"{mask_password(url)} at revision {head}"), engine


def check_file_modes(settings: Settings, config_path: Path | None = None) -> list[Check]:
    """A warning for each of the config file, the SQLite database (with its -wal and -shm)
    and the maildir that others on the machine can read: they hold addresses and, in the
    config, perhaps a database password. Missing files are not this check's business."""
    checks = []
    if config_path is not None and _open_to_others(config_path, 0o044):
        checks.append(Check("config", "warn", _readable([config_path])))
    db = sqlite_path(database_url(settings))
    if db is not None:
        files = [f for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if _open_to_others(f, 0o044)]
        if files:
            checks.append(Check("database", "warn", _readable(files)))
    if settings.sending.transport == "maildir":
        maildir = Path(settings.base_dir) / settings.sending.maildir_path
        if _open_to_others(maildir, 0o055):
            why = f"maildir {maildir} is readable by group or others: chmod 700 {maildir}"
            checks.append(Check("transport", "warn", why))
    return checks


def _readable(files: list[Path]) -> str:
    names = " ".join(str(f) for f in files)
    verb = "is" if len(files) == 1 else "are"
    return f"{names} {verb} readable by group or others: chmod 600 {names}"


def _open_to_others(path: Path, bits: int) -> bool:
    try:
        return bool(path.stat().st_mode & bits)
    except OSError:
        return False


def check_transport(settings: Settings) -> list[Check]:
    """The maildir is writable, or each SMTP relay takes a session as configured."""
    if settings.sending.transport == "maildir":
        path = Path(settings.base_dir) / settings.sending.maildir_path
        probe = path if path.exists() else path.parent
        if os.access(probe, os.W_OK):
            return [Check("transport", "ok", f"maildir {path} is writable")]
        why = f"maildir {path} is not writable (sending.maildir_path)"
        return [Check("transport", "fail", why)]
    relays = settings.smtp_relays()
    return [_check_relay(settings, relay, several=len(relays) > 1) for relay in relays]


def _check_relay(settings: Settings, relay: SmtpSettings, *, several: bool) -> Check:
    from .delivery.transports import TransportError, smtp_transport

    async def probe() -> str:
        return await smtp_transport(relay, Path(settings.base_dir)).check()

    name = f"smtp {relay.label}" if several else "smtp"
    try:
        return Check(name, "ok", asyncio.run(probe()))
    except TransportError as exc:
        # A message that names a setting already says what to fix.
        fix = "" if "smtp." in str(exc) else "; check smtp.host, smtp.port and smtp.security"
        return Check(name, "fail", f"{exc}{fix}")
    except NewsletterError as exc:
        return Check(name, "fail", str(exc))


def check_feeds(settings: Settings) -> list[Check]:
    checks = []
    for feed in settings.feeds:
        try:
            fetched = fetch_feed(feed.url, timeout=min(20.0, settings.smtp.timeout))
            body = parse_feed(fetched.body, base_url=fetched.url) if fetched.body else None
        except NewsletterError as exc:
            checks.append(Check("feed", "fail", f"{exc} (check the [[feeds]] url)"))
            continue
        count = len(body.entries) if body else 0
        checks.append(Check("feed", "ok", f"{feed.url}: {count} posts ({feed.mode} mode)"))
    return checks


def check_templates(settings: Settings) -> Check:
    templates_dir = settings.templates.dir
    sample = IssueContent(
        issue_id=0, kind="post", subject="Template check", preheader="",
        posts=(PostView(title="Sample", url="https://example.com/p", html="<p>Hello.</p>",
                        summary="Hello.", published_at=utcnow()),),
    )  # fmt: skip
    try:
        prepare_issue(sample, settings)  # resolves [templates] dir itself
    except NewsletterError as exc:
        fix = " (check [templates] dir)" if templates_dir else ""
        return Check("templates", "fail", f"{exc}{fix}")
    where = templates_dir or "built-in"
    return Check("templates", "ok", f"{where} templates render")


def check_site(settings: Settings) -> list[Check]:
    checks = []
    if not settings.site.postal_address.strip():
        why = "no postal address: set [site] postal_address (required in commercial email)"
        checks.append(Check("site", "fail", why))
    if not settings.site.base_url.startswith("https://"):
        why = "is not https: unsubscribe links must be https for Gmail and Yahoo"
        checks.append(Check("site", "warn", f"site.base_url {settings.site.base_url} {why}"))
    if settings.sender.from_address.endswith("@example.com"):
        checks.append(Check("sender", "warn", "sender.from_address is still example.com"))
    tracking = settings.tracking
    if tracking.clicks or tracking.opens:
        what = " and ".join(
            n for n, on in (("clicks", tracking.clicks), ("opens", tracking.opens)) if on
        )
        where = f"{settings.site.base_url.rstrip('/')}/l/..."
        checks.append(
            Check(
                "tracking",
                "ok",
                f"{what} counted through {where} (`newsletter serve` must answer there)",
            )
        )
    return checks


def check_dkim(settings: Settings, lookup: object | None = None) -> list[Check]:
    """Each [dkim] key: it loads, and the DNS record at SELECTOR._domainkey.DOMAIN publishes
    it (a warning when DNS cannot be asked). No keys: a warning, since Gmail and Yahoo
    refuse unsigned bulk mail."""
    if not settings.dkim.all_keys():
        return [Check("dkim", "warn", "no [dkim] key: large receivers reject unsigned bulk "
                                      "mail; run `newsletter dkim keygen`")]  # fmt: skip
    from .dkim import published
    from .dkim.sign import signer_for

    try:
        signer = signer_for(settings.dkim, settings.base_dir)
    except NewsletterError as exc:
        return [Check("dkim", "fail", str(exc))]
    checks = []
    for key in signer.keys if signer else []:
        found = published.check(key, lookup or published.dns_txt)  # type: ignore[arg-type]
        checks.append(Check("dkim", found.level, found.detail))  # type: ignore[arg-type]
    return checks


def run_checks(settings: Settings, config_path: Path | None = None) -> list[Check]:
    """Every check, in the order a newcomer would fix them; ``config_path`` is the file the
    settings came from (its mode is checked)."""
    checks: list[Check] = []
    database, engine = check_database(settings)
    checks.append(database)
    if engine is not None:
        engine.dispose()  # SQLite removes its -wal and -shm files when the last one closes
    checks += check_file_modes(settings, config_path)
    checks.extend(check_transport(settings))
    checks += check_dkim(settings)
    checks += check_feeds(settings)
    checks.append(check_templates(settings))
    checks += check_site(settings)
    return checks
