"""Time zones from an import's ``timezone`` column (Mailchimp's TIMEZONE too), and back out
in the export."""

from __future__ import annotations

import json


def test_import_reads_time_zones_and_keeps_unknown_ones_as_attributes(cli, tmp_path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,name,timezone\n"
        "kei@example.com,Kei,Asia/Tokyo\n"
        "ann@example.com,Ann,Somewhere/Else\n"
        "bob@example.com,Bob,\n"
    )
    cli.ok("list", "create", "blog")
    cli.ok("subscriber", "import", str(csv), "--list", "blog")

    def person(address: str) -> dict:
        return json.loads(cli.ok("subscriber", "show", address, "--json").stdout)

    assert person("kei@example.com")["timezone"] == "Asia/Tokyo"
    ann = person("ann@example.com")
    assert ann["timezone"] is None and ann["attributes"] == {"timezone": "Somewhere/Else"}
    assert person("bob@example.com")["timezone"] is None

    # a later import changes the zone (an update), an empty cell leaves it
    csv.write_text("email,timezone\nkei@example.com,Europe/Stockholm\nbob@example.com,\n")
    out = cli.ok("subscriber", "import", str(csv), "--list", "blog").stdout
    assert "1 updated" in out
    assert person("kei@example.com")["timezone"] == "Europe/Stockholm"

    mailchimp = tmp_path / "members.csv"
    mailchimp.write_text(
        "Email Address,First Name,Last Name,MEMBER_RATING,TIMEZONE\n"
        "mc@example.com,Mai,Chi,2,America/New_York\n"
    )
    cli.ok("subscriber", "import", str(mailchimp), "--list", "blog")
    assert person("mc@example.com")["timezone"] == "America/New_York"
    assert "TIMEZONE" not in person("mc@example.com")["attributes"]

    exported = tmp_path / "out.csv"
    cli.ok("subscriber", "export", "--out", str(exported))
    rows = exported.read_text().splitlines()
    assert rows[0].endswith(",timezone")
    assert any(r.startswith("kei@example.com") and r.endswith(",Europe/Stockholm") for r in rows)
