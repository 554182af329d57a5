"""load_markdown_post: front matter, CommonMark with tables, sanitising, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsletter.content import load_markdown_post
from newsletter.errors import ContentError

from . import POSTS

SITE = "https://founder.example.com/"


def test_a_full_post() -> None:
    post = load_markdown_post(POSTS / "pricing-per-seat.md", base_url=SITE)

    assert post.guid == "md:pricing-per-seat"
    assert post.title == "Why we price per seat: notes from year three"
    assert post.url == "https://founder.example.com/posts/pricing-per-seat/"
    assert post.published_at == datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
    assert post.updated_at == datetime(2024, 5, 3, tzinfo=UTC)
    assert (
        post.summary == "Seat pricing is boring, predictable, and exactly what our buyers wanted."
    )
    assert post.author == "Maria Lindqvist"
    # Relative to the post's own URL.
    assert post.image_url == "https://founder.example.com/posts/pricing-per-seat/images/seats.png"
    assert "<strong>finance</strong>" in post.html
    assert "<h2>What changed</h2>" in post.html
    assert "<td>Business</td>" in post.html  # the table extension is on
    assert '<a href="https://founder.example.com/pricing" rel="noopener">' in post.html
    assert 'href="https://founder.example.com/posts/annual-contracts/"' in post.html
    assert 'src="https://founder.example.com/posts/pricing-per-seat/charts/seats.png"' in post.html
    # Raw HTML is allowed in Markdown, and sanitised like feed HTML.
    assert "<p>Raw HTML paragraph.</p>" in post.html
    assert "script" not in post.html
    assert "onclick" not in post.html


def test_a_minimal_post_gets_defaults_from_the_file_and_body(tmp_path: Path) -> None:
    post = load_markdown_post(POSTS / "minimal-post.md", base_url=SITE)

    assert post.guid == "md:minimal-post"
    assert post.url == ""
    assert post.published_at is None and post.updated_at is None
    assert post.summary == (
        "Just a body, with a relative link and nothing else in the front matter."
    )
    assert post.image_url == ""
    assert '<a href="https://founder.example.com/about" rel="noopener">' in post.html


def test_without_a_base_url_relative_links_are_dropped() -> None:
    post = load_markdown_post(POSTS / "minimal-post.md")

    assert "href" not in post.html
    assert "relative link" in post.html


def test_the_same_file_gives_the_same_post_and_an_edit_changes_the_hash(tmp_path: Path) -> None:
    original = (POSTS / "minimal-post.md").read_text()
    copy = tmp_path / "minimal-post.md"
    copy.write_text(original)
    first = load_markdown_post(copy, base_url=SITE)
    assert load_markdown_post(copy, base_url=SITE) == first

    copy.write_text(original.replace("nothing else", "little else"))
    edited = load_markdown_post(copy, base_url=SITE)

    assert edited.guid == first.guid
    assert edited.content_hash != first.content_hash


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing-title.md", "the front matter has no 'title'"),
        ("bad-date.md", "bad date 'next tuesday' (use ISO 8601"),
        ("no-front-matter.md", "no front matter"),
        ("invalid-front-matter.md", "invalid front matter: did not find expected ',' or ']'"),
        ("does-not-exist.md", "cannot read file: No such file or directory"),
    ],
)
def test_unusable_files_raise_one_clear_line(name: str, problem: str) -> None:
    path = POSTS / name

    with pytest.raises(ContentError) as caught:
        load_markdown_post(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: {problem}")
    assert "\n" not in message


def write_post(tmp_path: Path, front_matter: str, body: str = "Body.") -> Path:
    path = tmp_path / "post.md"
    path.write_text(f"---\n{front_matter}\n---\n{body}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),  # YAML date: midnight UTC
        ("2024-05-01 09:30:00", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),  # naive: UTC
        ("2024-05-01T09:30:00+02:00", datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
        ('"2024-05-01T09:30:00Z"', datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ('"2024-05-01 09:30-05:00"', datetime(2024, 5, 1, 14, 30, tzinfo=UTC)),
        ('""', None),
    ],
)
def test_dates(tmp_path: Path, value: str, expected: datetime | None) -> None:
    post = load_markdown_post(write_post(tmp_path, f"title: T\ndate: {value}"))

    assert post.published_at == expected
    if expected is not None:
        assert post.published_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("value", ['"2024-13-01"', "yesterday", "12345", "true", "[2024]"])
def test_bad_dates(tmp_path: Path, value: str) -> None:
    with pytest.raises(ContentError, match=r"post\.md: bad date"):
        load_markdown_post(write_post(tmp_path, f"title: T\ndate: {value}"))


def test_impossible_yaml_date_is_invalid_front_matter(tmp_path: Path) -> None:
    # YAML itself refuses an unquoted impossible date, before we see the value.
    with pytest.raises(ContentError, match=r"post\.md: invalid front matter: month must be"):
        load_markdown_post(write_post(tmp_path, "title: T\ndate: 2024-13-01"))


def test_bad_updated_date_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match=r"post\.md: bad updated 'soon'"):
        load_markdown_post(write_post(tmp_path, "title: T\nupdated: soon"))


@pytest.mark.parametrize("title", ['""', "'   '", "~"])
def test_blank_title_is_missing(tmp_path: Path, title: str) -> None:
    with pytest.raises(ContentError, match="no 'title'"):
        load_markdown_post(write_post(tmp_path, f"title: {title}"))


def test_title_is_one_line_and_front_matter_summary_is_plain(tmp_path: Path) -> None:
    path = write_post(tmp_path, 'title: "Two\\r\\nlines"\nsummary: "A <b>short</b>\\nsummary"')

    post = load_markdown_post(path)

    assert post.title == "Two lines"
    assert post.summary == "A <b>short</b> summary"  # plain text: escaped by whoever shows it


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes("---\ntitle: With BOM\n---\nBody.\n".encode("utf-8-sig"))

    assert load_markdown_post(path).title == "With BOM"


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("---\ntitle: Caf\u00e9\n---\n".encode("latin-1"))

    with pytest.raises(ContentError, match=r"latin1\.md: not UTF-8 text"):
        load_markdown_post(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="cannot read file"):
        load_markdown_post(tmp_path)
