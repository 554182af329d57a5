"""A reader's own choices: how often they hear from each list (their cadence) and their time
zone (for `issue schedule --local`). Set from the preferences page, the sign-up form's hidden
time-zone field, an import's ``timezone`` column, or the admin (`subscriber set`).

Raises InvalidInputError with one line for an unknown cadence or zone, NotFoundError for a
list the reader is not on.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy.orm import Session

from ..config import CADENCES, Settings
from ..errors import InvalidInputError, NotFoundError
from ..store import cadence as store
from ..store.models import MailingList, Subscriber

LABELS = {"post": "Every post", "weekly": "A weekly digest", "monthly": "A monthly digest"}
_ALIASES = {"every-post": "post", "every_post": "post", "each": "post", "posts": "post"}
MAX_ZONE = 64


def normalise_cadence(value: str) -> str:
    """A cadence as a user may write it ("post", "every-post", "weekly", "monthly") in its
    stored form."""
    name = value.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in CADENCES:
        raise InvalidInputError(
            f"unknown cadence {value!r}: choose post (every post), weekly or monthly"
        )
    return name


_ZONES: set[str] = set()


def normalise_zone(value: str) -> str | None:
    """An IANA zone name ("Europe/Stockholm") as given; None for an empty value.
    InvalidInputError for a name the zone database does not have."""
    name = value.strip()
    if not name:
        return None
    if not _ZONES:
        _ZONES.update(available_timezones())
    if len(name) > MAX_ZONE or name not in _ZONES:
        raise InvalidInputError(
            f"unknown time zone {value[:80]!r} (use Area/City, like Asia/Tokyo)"
        )
    ZoneInfo(name)  # loadable (ZoneInfoNotFoundError would be a broken tzdata install)
    return name


def zone_or_none(value: str) -> str | None:
    """A zone from an untrusted source (the browser's field): its name, or None when it is
    not one we know (nothing to refuse a sign-up over)."""
    try:
        return normalise_zone(value)
    except (InvalidInputError, ZoneInfoNotFoundError):
        return None


def set_timezone(sub: Subscriber, value: str) -> str | None:
    sub.timezone = normalise_zone(value)
    return sub.timezone


def cadences(session: Session, settings: Settings, sub: Subscriber) -> dict[str, dict[str, str]]:
    """list name -> {"cadence": what they get, "chosen": their own choice or ""} for each
    list the reader is on."""
    own = store.cadences(session, sub.id)
    found = {}
    for mlist in sub.lists:
        chosen = own.get(mlist.id) or ""
        found[mlist.name] = {
            "cadence": chosen or settings.list_settings(mlist.name).cadence,
            "chosen": chosen,
        }
    return found


def set_cadence(session: Session, sub: Subscriber, mlist: MailingList, value: str) -> str:
    """The reader's cadence on ``mlist`` from now on ("default" or "" for the list's)."""
    cadence = None if value.strip().lower() in ("", "default") else normalise_cadence(value)
    if not store.set_cadence(session, sub.id, mlist.id, cadence):
        raise NotFoundError(f"{sub.email} is not on the list {mlist.name!r}")
    return cadence or ""
