"""CSV import: a quote that is never closed refuses the file (or, --lenient, one row), and the
report is written at a temporary name, renamed at the end, never over the input file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from newsletter.errors import ImportFileError
from newsletter.subscribers.csvparse import read_csv
from tests.helpers import store_snapshot


def people(cli) -> dict[str, dict]:
    return {r["email"]: r for r in json.loads(cli.ok("subscriber", "list", "--json").stdout)}


def report_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open(encoding="utf-8")))


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def refused(cli, *args: str) -> str:
    """Run an import that must be refused: exit 1, one line, no traceback; returns stderr."""
    result = cli("subscriber", "import", *args)
    assert result.exit_code == 1, result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


OPEN_AT_END = 'email,name\nada@example.com,Ada\nbob@example.com,"Bob\ncy@example.com,Cy\n'
NO_NEWLINE_AT_END = 'email,name\nada@example.com,Ada\nbob@example.com,"Bob'
# The quote closes at the next quoted field, two rows on: the rows between would vanish.
CLOSED_LATER = (
    'email,name,company\nada@example.com,Ada,x\nbob@example.com,"Bob,x\ncy@example.com,Cy,x\n'
    'dee@example.com,Dee,"Acme, Inc"\neve@example.com,Eve,y\n'
)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (OPEN_AT_END, "(still open at the end of the file)"),
        (NO_NEWLINE_AT_END, "(still open at the end of the file)"),
        (CLOSED_LATER, "(line 4 looks like a row of its own)"),
    ],
    ids=["open-at-end", "no-newline-at-end", "closed-later"],
)
def test_unterminated_quote_refuses_the_file_and_changes_nothing(
    cli, tmp_path, text, detail
) -> None:
    cli.ok("subscriber", "add", "old@example.com")
    report = write(tmp_path / "report.csv", "an earlier report\n")
    before = store_snapshot(cli.config)
    f = write(tmp_path / "export.csv", text)
    err = refused(cli, str(f), "--report", str(report))
    assert err.startswith("Error: export.csv: row 3 (line 3): a quote opened on this line is ")
    assert detail in err and "--lenient" in err
    assert store_snapshot(cli.config) == before
    assert report.read_text("utf-8") == "an earlier report\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.csv.")]


def test_the_line_is_where_the_quote_opened_not_the_row(cli, tmp_path) -> None:
    # Row 2 has a (closed) line break in its address, so row 3 starts on line 4; the quote
    # that never closes is in row 4, in its second field, on line 5.
    f = write(
        tmp_path / "crm.csv",
        'email,name,address\nada@example.com,Ada,"1 Main St\nTown"\nbob@example.com,Bob,x\n'
        'cy@example.com,"Cy,x\ndee@example.com,Dee,x\neve@example.com,Eve,x\n"\n',
    )
    err = refused(cli, str(f))
    assert "crm.csv: row 4 (line 5): a quote opened on this line is not closed" in err
    assert "(line 6 looks like a row of its own)" in err


def test_a_record_far_longer_than_the_others(cli, tmp_path) -> None:
    # No address in the swallowed lines, and the quote closes before the end: only the length
    # of the record gives it away.
    rows = [f"u{i}@example.com,U{i},n\n" for i in range(20)]
    words = ["just some words, nothing more\n"] * 200
    f = write(
        tmp_path / "notes.csv",
        "email,name,notes\n" + "".join(rows[:5]) + 'u5@example.com,U5,"begins\n' + "".join(words)
        + 'ends"\n' + "".join(rows[6:]),
    )  # fmt: skip
    err = refused(cli, str(f))
    assert "notes.csv: row 7 (line 7): a quote opened on this line is not closed" in err
    assert "(the field runs on for 202 lines, 6,032 characters, far longer than the" in err


def test_line_breaks_inside_closed_quotes_are_fine(cli, tmp_path) -> None:
    f = write(
        tmp_path / "ok.csv",
        'email,name,address\nada@example.com,"Ada\nLovelace","1 Main St\r\nTown\r\n12345"\n'
        'bob@example.com,Bob,"note: write to\nbob at example dot com"\n',
    )
    out = cli.ok("subscriber", "import", str(f)).stdout
    assert "2 new" in out and "0 rejected" in out
    ada = json.loads(cli.ok("subscriber", "show", "ada@example.com", "--json").stdout)
    assert ada["attributes"]["address"] == "1 Main St Town 12345"


def test_lenient_rejects_the_row_and_reads_on(cli, tmp_path) -> None:
    f = write(tmp_path / "export.csv", CLOSED_LATER)
    report = tmp_path / "report.csv"
    out = cli.ok("subscriber", "import", str(f), "--lenient", "--report", str(report)).stdout
    assert "5 rows (generic format): 4 new" in out and "1 rejected" in out
    assert set(people(cli)) == {
        "ada@example.com", "cy@example.com", "dee@example.com", "eve@example.com"
    }  # fmt: skip
    dee = json.loads(cli.ok("subscriber", "show", "dee@example.com", "--json").stdout)
    assert dee["attributes"] == {"company": "Acme, Inc"}  # read again from its own line
    assert report_rows(report) == [
        {"row": "3", "value": 'bob@example.com,"Bob,x', "outcome": "rejected",
         "reason": "a quote opened on line 3 is not closed (line 4 looks like a row of its "
                   "own); read on from line 4"},
    ]  # fmt: skip


def test_lenient_with_several_open_quotes_and_one_open_at_the_end(cli, tmp_path) -> None:
    f = write(
        tmp_path / "export.csv",
        'email,name\na@example.com,"A\nb@example.com,B\nc@example.com,"C\nd@example.com,D\n'
        'e@example.com,"E\n',
    )
    report = tmp_path / "report.csv"
    out = cli.ok(
        "subscriber", "import", str(f), "--lenient", "--dry-run", "--report", str(report)
    ).stdout
    assert out.startswith("Dry run, nothing changed: 5 rows") and "2 new" in out
    assert "3 rejected" in out
    rows = report_rows(report)
    assert [(r["row"], r["value"]) for r in rows] == [
        ("2", 'a@example.com,"A'), ("4", 'c@example.com,"C'), ("6", 'e@example.com,"E'),
    ]  # fmt: skip
    assert "(still open at the end of the file)" in rows[2]["reason"]
    assert people(cli) == {}


def test_a_runaway_past_the_field_limit(cli, tmp_path) -> None:
    # 60,000 rows after the open quote and no other quote: the field passes a million
    # characters long before the end of the file.
    lines = [f"user{i}@example.com,User {i}\n" for i in range(60_000)]
    lines[3] = 'user3@example.com,"User 3\n'
    f = write(tmp_path / "big.csv", "email,name\n" + "".join(lines))
    before = store_snapshot(cli.config)
    err = refused(cli, str(f))
    assert "big.csv: row 5 (line 5): field larger than field limit (1000000), running on" in err
    assert store_snapshot(cli.config) == before
    report = tmp_path / "report.csv"
    out = cli.ok("subscriber", "import", str(f), "--lenient", "--report", str(report)).stdout
    assert "59999 new" in out and "1 rejected" in out
    assert [(r["row"], r["value"]) for r in report_rows(report)] == [
        ("5", 'user3@example.com,"User 3')
    ]


def test_an_open_quote_in_the_header_is_refused_even_when_lenient(cli, tmp_path) -> None:
    f = write(tmp_path / "head.csv", '"email,name\nada@example.com,Ada\n')
    err = refused(cli, str(f), "--lenient")
    assert "head.csv: row 1 (line 1): a quote opened on this line of the header is not" in err


# --- the report file ------------------------------------------------------------------------


def test_the_report_may_not_be_the_input_file(cli, tmp_path) -> None:
    f = write(tmp_path / "export.csv", "email\nada@example.com\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(f)
    before = store_snapshot(cli.config)
    for same in (f"{tmp_path}/sub/../export.csv", str(tmp_path / "link.csv")):
        err = refused(cli, str(f), "--report", same)
        assert "is the input file; name another file" in err
    assert f.read_text("utf-8") == "email\nada@example.com\n"
    assert store_snapshot(cli.config) == before


def test_the_report_is_renamed_into_place(cli, tmp_path) -> None:
    f = write(tmp_path / "export.csv", "email\nada@example.com\nnot-an-address\n")
    target = write(tmp_path / "r.csv", "old\n")
    (tmp_path / "link.csv").symlink_to(target)
    cli.ok("subscriber", "import", str(f), "--report", str(tmp_path / "link.csv"))
    assert (tmp_path / "link.csv").is_symlink()  # the link is kept, its target replaced
    assert [r["value"] for r in report_rows(target)] == ["not-an-address"]
    assert target.stat().st_mode & 0o077 == 0  # it holds addresses
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_report_that_cannot_be_written_is_one_line(cli, tmp_path) -> None:
    f = write(tmp_path / "export.csv", "email\nada@example.com\n")
    assert "cannot write report" in refused(cli, str(f), "--report", str(tmp_path))
    missing = tmp_path / "no" / "r.csv"
    assert "No such file or directory" in refused(cli, str(f), "--report", str(missing))
    assert people(cli) == {}


# --- the reader on its own --------------------------------------------------------------------


def test_records_are_what_csv_reader_gives_for_a_well_formed_file() -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["email", "name", "notes"])
    expected = []
    for i in range(10_000):
        row = [f"u{i}@example.com", f"Name, {i}" if i % 3 else f"N{i}",
               'say "hi"\nbye' if i % 7 == 0 else ""]  # fmt: skip
        w.writerow(row)
        expected.append(row)
    header, records, _ = read_csv(io.BytesIO(buf.getvalue().encode()), "gen.csv")
    assert header == ["email", "name", "notes"]
    got = list(records)
    assert [cells for _, cells in got] == expected
    assert [n for n, _ in got] == list(range(2, 10_002))
    assert records.rejected == []


def test_strict_reading_raises_import_file_error() -> None:
    raw = io.BytesIO(OPEN_AT_END.encode())
    _, records, _ = read_csv(raw, "x.csv")
    with pytest.raises(ImportFileError, match=r"^x\.csv: row 3 \(line 3\): a quote opened"):
        list(records)
