"""The API's request and response bodies as msgspec Structs: they validate what comes in
(types, lengths, no unknown fields) and are the schemas of the OpenAPI document, so the two
cannot drift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

Email = Annotated[str, Meta(min_length=3, max_length=320, description="An email address.")]
Name = Annotated[
    str, Meta(max_length=200, pattern=r"^[^<>\x00-\x1f]*$", description="No markup, one line.")
]
ListName = Annotated[str, Meta(min_length=1, max_length=100)]
TagName = Annotated[str, Meta(min_length=1, max_length=100)]
Attributes = Annotated[
    dict[Annotated[str, Meta(max_length=100)], str | int | float | bool | None],
    Meta(description="Your own fields: short text, numbers or true/false."),
]
Limit = Annotated[int, Meta(ge=1, le=500)]
Ids = list[int]  # (an alias: in a Struct with a field named "list", list[...] would not resolve)


class Input(Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused (a typo must not be ignored)."""


# -- subscribers ---------------------------------------------------------------------------


class SubscriberIn(Input):
    """A new subscriber. Without ``confirmed`` they get the confirmation email of the double
    opt-in (as on the sign-up form) and are ``unconfirmed`` until they click it; with
    ``confirmed: true`` (you have their consent already) they are active at once."""

    email: Email
    name: Name = ""
    lists: Annotated[list[ListName], Meta(max_length=50)] = []
    attributes: Attributes = {}
    tags: Annotated[list[TagName], Meta(max_length=50)] = []
    confirmed: bool = False
    timezone: Annotated[str, Meta(max_length=64)] | None = None
    trigger_sequences: bool = True


class SubscriberPatch(Input):
    """Changes: only the fields given. ``tags`` and ``lists`` replace the current ones."""

    name: Name | UnsetType = UNSET
    attributes: Attributes | UnsetType = UNSET
    tags: Annotated[list[TagName], Meta(max_length=50)] | UnsetType = UNSET
    lists: Annotated[list[ListName], Meta(max_length=50)] | UnsetType = UNSET


class Subscriber(Struct, kw_only=True):
    id: int
    email: str
    name: str
    status: str
    attributes: dict[str, Any]
    lists: list[str]
    tags: list[str]
    timezone: str | None
    source: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class SubscriberPage(Struct, kw_only=True):
    data: list[Subscriber]
    next_cursor: str | None = None  # give it as ?cursor= for the next page; null on the last


class SubscriberQuery(Struct, forbid_unknown_fields=True, kw_only=True):
    email: Email | None = None
    status: Annotated[str, Meta(max_length=20)] | None = None
    list: ListName | None = None
    tag: TagName | None = None
    limit: Limit = 100
    cursor: Annotated[str, Meta(max_length=20, pattern=r"^[0-9]+$")] | None = None


# -- lists, segments, posts -----------------------------------------------------------------


class ListIn(Input):
    name: Annotated[
        str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    ]
    description: Annotated[str, Meta(max_length=1000)] = ""


class MailingList(Struct, kw_only=True):
    name: str
    description: str
    active: int
    total: int


class Segment(Struct, kw_only=True):
    name: str
    expression: str


class SegmentCount(Struct, kw_only=True):
    name: str
    expression: str
    count: int


class PostIn(Input):
    """A post from Markdown (``markdown``) or HTML (``html``, sanitised as feed HTML)."""

    title: Annotated[str, Meta(min_length=1, max_length=500)]
    markdown: Annotated[str, Meta(max_length=200_000)] | None = None
    html: Annotated[str, Meta(max_length=200_000)] | None = None
    url: Annotated[str, Meta(max_length=2000)] = ""
    summary: Annotated[str, Meta(max_length=1000)] = ""
    slug: Annotated[str, Meta(max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] | None = (
        None
    )


class Post(Struct, kw_only=True):
    id: int
    title: str
    url: str
    published_at: datetime | None
    origin: str
    guid: str
    author: str
    summary: str


class PostQuery(Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Limit = 50


# -- issues, sequences ----------------------------------------------------------------------


class IssueIn(Input):
    """A draft issue of one post (``post_id``, or ``latest``) or a ``digest``, to ``list``,
    optionally to part of it (``segment`` or ``where``, in the segment language)."""

    post_id: int | None = None
    latest: bool = False
    digest: bool = False
    list: ListName | None = None
    subject: Annotated[str, Meta(max_length=500)] | None = None
    preheader: Annotated[str, Meta(max_length=500)] | None = None
    segment: Annotated[str, Meta(max_length=100)] | None = None
    where: Annotated[str, Meta(max_length=2000)] | None = None


class Issue(Struct, kw_only=True):
    id: int
    subject: str
    status: str
    kind: str
    list: str | None
    scheduled_at: datetime | None
    created_at: datetime
    preheader: str
    post_ids: Ids


class ScheduleIn(Input):
    at: Annotated[datetime, Meta(tz=True, description="ISO 8601 with an offset.")]


class Accepted(Struct, kw_only=True):
    id: int
    status: str
    added: int


class EnrolIn(Input):
    email: Email | None = None
    subscriber_id: int | None = None
    restart: bool = False


class Enrolled(Struct, kw_only=True):
    sequence: str
    enrolled: int


class WebhookIn(Input):
    url: Annotated[str, Meta(min_length=8, max_length=2000)]
    events: Annotated[list[Annotated[str, Meta(max_length=60)]], Meta(min_length=1, max_length=20)]
    name: Annotated[str, Meta(max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] | None = (
        None
    )


class Webhook(Struct, kw_only=True):
    name: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str
    created_at: datetime


class NewWebhook(Webhook, kw_only=True):
    secret: str  # "whsec_…": shown this once; verify webhook-signature with it


class Problem(Struct, kw_only=True, omit_defaults=True):
    """An error (RFC 9457): ``title`` says what kind, ``detail`` what happened; a validation
    error names the ``field``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    field: str | None = None


IssueStats = dict[str, Any]  # `newsletter issue show --json`
