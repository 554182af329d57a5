"""Composer fixtures: a B2B founder's essay (1,500 words, two images, one without alt
text), a three-post digest, their prepared issues, and recipients with awkward names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.compose import IssueContent, PostView, PreparedIssue, Recipient, prepare_issue
from newsletter.config import Settings

from .samples import FIXTURES, RECIPIENTS, make_settings


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def essay() -> PostView:
    return PostView(
        title="We changed our pricing three times. Here is what each change taught us",
        url="https://fieldnotes.example.com/essays/pricing-three-times",
        html=(FIXTURES / "essay.html").read_text(encoding="utf-8"),
        summary="Our first price was a guess, the second a reaction, the third a decision.",
        published_at=datetime(2026, 3, 12, 8, 0, tzinfo=UTC),
        author="Maja Lindqvist",
        image_url="https://images.example.com/essays/pricing/hero.jpg",
    )


@pytest.fixture(scope="session")
def post_issue(essay: PostView) -> IssueContent:
    return IssueContent(
        issue_id=42,
        kind="post",
        subject=essay.title,
        preheader=essay.summary,
        posts=(essay,),
        web_path="/archive/pricing-per-seat-42",
    )


@pytest.fixture(scope="session")
def digest_issue(essay: PostView) -> IssueContent:
    onboarding = PostView(
        title="Onboarding for location-based plans",
        url="https://fieldnotes.example.com/essays/onboarding",
        html="<p>Why our activation rate went down before it went up.</p>",
        summary="Why our activation rate went down before it went up, and the three changes "
        "to the first week that turned it around.",
        published_at=datetime(2026, 4, 2, 8, 0, tzinfo=UTC),
        image_url="https://images.example.com/essays/onboarding.jpg",
    )
    support = PostView(
        title="The support channel that replaced our sales team",
        url="https://fieldnotes.example.com/essays/support",
        html="<p>A shared channel.</p>",
        summary="A shared channel with our engineers closed more mid-sized deals than any "
        "sales hire we interviewed.",
        published_at=None,
    )
    return IssueContent(
        issue_id=43,
        kind="digest",
        subject="Field Notes digest: 3 new essays",
        preheader="Pricing, onboarding and support: three essays from April.",
        posts=(essay, onboarding, support),
        web_path="/archive/digest-43?k=signature",
    )


@pytest.fixture
def prepared(post_issue: IssueContent, settings: Settings) -> PreparedIssue:
    return prepare_issue(post_issue, settings)


@pytest.fixture
def prepared_digest(digest_issue: IssueContent, settings: Settings) -> PreparedIssue:
    return prepare_issue(digest_issue, settings)


@pytest.fixture(params=RECIPIENTS, ids=lambda r: f"subscriber{r.subscriber_id}")
def recipient(request: pytest.FixtureRequest) -> Recipient:
    return request.param
