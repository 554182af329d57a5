"""Mailchimp's export archive as downloaded: the zip of subscribed, unsubscribed and cleaned
members, each file with its status, in one transaction with one report; bad archives are
refused with one line and change nothing."""

from __future__ import annotations

import csv
import json
import struct
import zipfile
from pathlib import Path

import pytest

from newsletter.errors import ImportFileError
from newsletter.subscribers.importer import archive_members
from tests.helpers import store_snapshot

AUDIENCE = "8a1b2c3d4e"
HEAD = '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,LEID,EUID'
SUBSCRIBED = (
    f"\ufeff{HEAD},TAGS\r\n"
    'cus@example.com,Cus,Tomer,2,"2024-01-03 10:00:00",1,a1,"customer, vip"\r\n'
    'Reader@Example.com,Rea,Der,1,"2024-01-03 10:00:00",2,a2,\r\n'
    "not-an-address,No,Body,1,,3,a3,\r\n"
)
UNSUBSCRIBED = (
    f"{HEAD},UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_REASON,TAGS\r\n"
    'gone@example.com,Gone,Away,1,"2023-01-01 00:00:00",4,a4,"2024-05-01 12:00:00",'
    "May issue,NORMAL,churned\r\n"
)
CLEANED = (
    f"{HEAD},CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,TAGS\r\n"
    'dead@example.com,Dead,Box,1,"2023-01-01 00:00:00",5,a5,"2024-04-01 09:00:00",April issue,\r\n'
)
FILES = {
    f"subscribed_members_export_{AUDIENCE}.csv": SUBSCRIBED,
    f"unsubscribed_members_export_{AUDIENCE}.csv": UNSUBSCRIBED,
    f"cleaned_members_export_{AUDIENCE}.csv": CLEANED,
}


def make_zip(path: Path, files: dict[str, str | bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return path


def people(cli) -> dict[str, dict]:
    return {r["email"]: r for r in json.loads(cli.ok("subscriber", "list", "--json").stdout)}


def test_the_three_files_give_the_three_statuses(cli, tmp_path) -> None:
    archive = make_zip(tmp_path / f"members_export_{AUDIENCE}.zip", FILES)
    cli.ok("list", "create", "blog")
    report = tmp_path / "report.csv"
    out = cli.ok(
        "subscriber", "import", str(archive), "--list", "blog", "--tag", "from-mailchimp",
        "--report", str(report),
    ).stdout  # fmt: skip
    assert out.splitlines() == [
        "Imported: 5 rows (mailchimp format): 4 new, 0 updated, 0 unchanged, 0 duplicate in "
        "file, 0 suppressed, 1 rejected.",
        f"From {archive.name}: subscribed_members_export_{AUDIENCE}.csv (active): 3; "
        f"unsubscribed_members_export_{AUDIENCE}.csv (unsubscribed): 1; "
        f"cleaned_members_export_{AUDIENCE}.csv (bounced): 1 rows.",
        "Tags churned, customer, from-mailchimp, vip: 7 given.",
        "4 joined list 'blog'.",
        f"Report of 1 row not imported: {report}",
    ]
    subs = people(cli)
    assert {email: s["status"] for email, s in subs.items()} == {
        "cus@example.com": "active",
        "Reader@example.com": "active",
        "gone@example.com": "unsubscribed",
        "dead@example.com": "bounced",
    }
    assert subs["cus@example.com"]["tags"] == ["customer", "from-mailchimp", "vip"]
    assert subs["gone@example.com"]["tags"] == ["churned", "from-mailchimp"]
    assert subs["dead@example.com"]["tags"] == ["from-mailchimp"]
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert [(r["file"], r["row"], r["value"], r["outcome"]) for r in rows] == [
        (f"subscribed_members_export_{AUDIENCE}.csv", "4", "not-an-address", "rejected")
    ]
    gone = json.loads(cli.ok("subscriber", "show", "gone@example.com", "--json").stdout)
    assert gone["events"][0]["detail"] == {
        "file": f"unsubscribed_members_export_{AUDIENCE}.csv",
        "row": 2,
    }
    # The archive again changes nothing; the subscribed file alone never re-activates anyone.
    before = store_snapshot(cli.config)
    out = cli.ok("subscriber", "import", str(archive)).stdout
    assert "0 new, 0 updated, 2 unchanged, 0 duplicate in file, 2 suppressed" in out
    assert store_snapshot(cli.config) == before


def test_a_partial_archive_in_a_folder_and_by_content(cli, tmp_path) -> None:
    # Some unpackers and re-packers add a folder and macOS metadata; the name may lose .zip.
    archive = make_zip(
        tmp_path / "download",
        {
            f"export/cleaned_members_export_{AUDIENCE}.csv": CLEANED,
            f"__MACOSX/export/._cleaned_members_export_{AUDIENCE}.csv": b"\x00\x05",
            "export/": "",
        },
    )
    out = cli.ok("subscriber", "import", str(archive)).stdout
    assert "1 new" in out and "(bounced): 1 rows" in out
    assert people(cli)["dead@example.com"]["status"] == "bounced"


def _forge_sizes(path: Path, size: int) -> None:
    """Rewrite the uncompressed size of every entry of the central directory."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        struct.pack_into("<I", data, at + 24, size)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def _corrupt_last_member(path: Path) -> None:
    """Flip a byte inside the last (stored) member's data: its CRC no longer matches."""
    data = bytearray(path.read_bytes())
    at = data.rfind(b"dead@example.com")
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p.write_text("email\nann@example.com\n"), "is not a zip archive that can be"),
        (lambda p: make_zip(p, {**FILES, "notes.txt": "hi"}), "it holds 'notes.txt'; expected"),
        (lambda p: make_zip(p, {"other.csv": "email\n"}), "is not a Mailchimp export archive"),
        (lambda p: make_zip(p, {}), "it holds no subscribed_members_export_*.csv"),
        (
            lambda p: make_zip(p, {**FILES, "a/subscribed_members_export_x.csv": SUBSCRIBED}),
            "holds two subscribed_members_export_*.csv files",
        ),
        (
            lambda p: _forge_sizes(make_zip(p, FILES), 0xFFFFFFF0),
            "would unpack to 12,884,901,840 bytes, more than the 4,294,967,296 allowed",
        ),
        (
            lambda p: _corrupt_last_member(make_zip(p, FILES, zipfile.ZIP_STORED)),
            "Bad CRC-32",
        ),  # the subscribed and unsubscribed files were imported first: all rolled back
        (
            lambda p: make_zip(p, {**FILES, f"cleaned_members_export_{AUDIENCE}.csv": b"\x00"}),
            f"cleaned_members_export_{AUDIENCE}.csv looks like a binary file",
        ),
    ],
    ids=[
        "not-a-zip",
        "other-file",
        "no-member",
        "empty",
        "two-of-a-kind",
        "bomb",
        "crc",
        "binary-member",
    ],
)
def test_bad_archives_are_one_line_and_change_nothing(cli, tmp_path, build, message) -> None:
    cli.ok("subscriber", "add", "keep@example.com")
    before = store_snapshot(cli.config)
    path = tmp_path / "export.zip"
    build(path)
    report = tmp_path / "report.csv"
    report.write_text("earlier report\n", encoding="utf-8")
    result = cli("subscriber", "import", str(path), "--report", str(report), "--tag", "x")
    assert result.exit_code == 1, result.stdout
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert store_snapshot(cli.config) == before
    assert report.read_text(encoding="utf-8") == "earlier report\n"


def test_the_limit_counts_what_the_files_unpack_to(tmp_path) -> None:
    # 10 MB of one repeated row packs into a few kB: refused under a 1 MB limit, unread.
    body = HEAD + "\r\n" + "a@example.com,A,B,1,,1,a\r\n" * 400_000
    archive = make_zip(tmp_path / "bomb.zip", {f"subscribed_members_export_{AUDIENCE}.csv": body})
    assert archive.stat().st_size < 100_000
    with zipfile.ZipFile(archive) as zf:
        with pytest.raises(ImportFileError, match="more than the 1,000,000 allowed"):
            archive_members(zf, "bomb.zip", max_bytes=1_000_000)
        ((info, status),) = archive_members(zf, "bomb.zip", max_bytes=20_000_000)
    assert status is None and info.file_size == len(body)
