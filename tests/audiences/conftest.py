"""Helpers for the audience tests: people imported through the real CLI, tags written
straight into the store (tagging has its own tests), the SMTP and web fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from newsletter.config import database_url, load_settings
from newsletter.store import connect
from newsletter.store.models import Subscriber, SubscriberTag, Tag
from tests.delivery.conftest import smtp_server, tls_files  # noqa: F401  (fixtures)
from tests.web.conftest import web  # noqa: F401  (fixture)


def import_people(cli, tmp_path: Path, rows: list[dict[str, str]], *, list_name: str) -> None:
    """Import ``rows`` (email plus any attribute columns) to ``list_name`` (created if new)."""
    if list_name not in {r["name"] for r in json.loads(cli.ok("list", "ls", "--json").stdout)}:
        cli.ok("list", "create", list_name)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    csv = tmp_path / f"{list_name}.csv"
    csv.write_text(
        ",".join(columns)
        + "\n"
        + "".join(",".join(r.get(c, "") for c in columns) + "\n" for r in rows)
    )
    cli.ok("subscriber", "import", str(csv), "--list", list_name)


def tag(config: Path, tags: dict[str, list[str]]) -> None:
    """Give each address its tags (tag name -> addresses), creating the tags."""
    engine = connect(database_url(load_settings(config)))
    try:
        with engine.begin() as conn:
            ids = {}
            for name in tags:
                found = conn.scalar(select(Tag.id).where(Tag.name == name))
                if found is None:
                    found = conn.execute(
                        Tag.__table__.insert().values(name=name)
                    ).inserted_primary_key[0]
                ids[name] = found
            for name, addresses in tags.items():
                people = conn.scalars(select(Subscriber.id).where(Subscriber.email.in_(addresses)))
                conn.execute(
                    SubscriberTag.__table__.insert(),
                    [{"subscriber_id": sid, "tag_id": ids[name]} for sid in people],
                )
    finally:
        engine.dispose()
