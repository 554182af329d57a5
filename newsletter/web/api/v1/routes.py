"""The /api/v1 endpoints: each parses nothing itself (the framework decoded the query and the
body into their Structs), calls the core and returns a response Struct. See docs/api.md."""

from __future__ import annotations

from typing import Any

import msgspec

from ....audiences import segments as segment_service
from ....content.library import iter_posts, post_row, upsert_post
from ....content.markdown_posts import render_markdown
from ....content.posts import build_post
from ....delivery.send import open_for_sending, set_issue_status
from ....errors import InvalidInputError, NotFoundError
from ....issues import schedule as issue_schedule
from ....issues import service as issues
from ....issues.render import prepare
from ....issues.report import issue_report
from ....sequences import service as sequences
from ....subscribers import records
from ....subscribers.optin import SignupRequest, request_signup
from ....subscribers.service import create_list, erase, list_counts, unsubscribe
from ....webhooks import service as webhooks
from .framework import Api, ApiError, Call
from .schemas import (
    Accepted,
    EnrolIn,
    Enrolled,
    Issue,
    IssueIn,
    IssueStats,
    ListIn,
    MailingList,
    NewWebhook,
    Post,
    PostIn,
    PostQuery,
    ScheduleIn,
    Segment,
    SegmentCount,
    Subscriber,
    SubscriberIn,
    SubscriberPage,
    SubscriberPatch,
    SubscriberQuery,
    Webhook,
    WebhookIn,
)

api = Api()
route = api.route
REFUSED = (
    "this address cannot be subscribed (it unsubscribed, bounced, complained, or asked for a "
    "link a moment ago)"
)


def _subscriber(call: Call, sub: Any) -> Subscriber:
    return msgspec.convert(records.record(call.session, sub), Subscriber, from_attributes=False)


def _find(call: Call) -> Any:
    """The subscriber the path names: by id (digits) or by address."""
    ref = call.params["subscriber"]
    if ref.isdigit() and len(ref) < 19:
        return records.get(call.session, int(ref))
    try:
        sub = records.by_email(call.session, ref) if "@" in ref else None
    except InvalidInputError:  # not an address: no one by that name
        sub = None
    if sub is None or sub.status == "erased":
        raise NotFoundError("no such subscriber")
    return sub


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


# -- subscribers ----------------------------------------------------------------------------


@route("GET", "/subscribers", scope="subscribers:read", query=SubscriberQuery,
       response=SubscriberPage)  # fmt: skip
def list_subscribers(call: Call) -> SubscriberPage:
    """Subscribers in id order, filtered (``email``, ``status``, ``list``, ``tag``), a page
    of ``limit`` at a time: pass ``next_cursor`` as ``cursor`` for the next."""
    q: SubscriberQuery = call.query
    rows, last = records.page(call.session, email=q.email, status=q.status, list_name=q.list,
                              tag=q.tag, after=int(q.cursor or 0), limit=q.limit)  # fmt: skip
    data = [msgspec.convert(r, Subscriber) for r in rows]
    return SubscriberPage(data=data, next_cursor=str(last) if last is not None else None)


@route("POST", "/subscribers", scope="subscribers:write", body=SubscriberIn,
       response=Subscriber, status=201)  # fmt: skip
def create_subscriber(call: Call) -> Any:
    """Add a subscriber: 201 with the record; 200 with the record when the address is
    subscribed already (nothing is changed: PATCH changes). Without ``confirmed`` they get
    the double opt-in's confirmation email, as from the sign-up form."""
    body: SubscriberIn = call.body
    existing = records.by_email(call.session, body.email)
    if (
        existing is not None
        and existing.status != "erased"
        and (body.confirmed or existing.status == "active")
    ):
        call.target = f"subscriber {existing.id}"
        return 200, _subscriber(call, existing)
    if body.confirmed:
        sub, _ = records.create_confirmed(
            call.session, body.email, name=body.name, lists=body.lists,
            attributes=body.attributes, tag_names=body.tags, timezone=body.timezone, ip=call.ip,
            trigger_sequences=body.trigger_sequences,
        )  # fmt: skip
    else:
        req = SignupRequest(email=body.email, name=body.name, lists=tuple(body.lists),
                            ip=call.ip, channel="api", timezone=body.timezone or "")  # fmt: skip
        mail = request_signup(call.session, req, call.web.policy, now=call.web.clock())
        if mail is not None:
            call.after.append(lambda: call.web.deliver_confirmation(mail))
        sub = records.by_email(call.session, body.email)
        if sub is None or mail is None:
            raise ApiError(422, "Unprocessable Content", REFUSED, field="email")
        records.check_attributes(body.attributes)
        if body.attributes:
            sub.attributes = (sub.attributes or {}) | body.attributes
    call.target = f"subscriber {sub.id}"
    return (200 if existing is not None else 201), _subscriber(call, sub)


@route("GET", "/subscribers/{subscriber:str}", scope="subscribers:read", response=Subscriber)
def get_subscriber(call: Call) -> Subscriber:
    """One subscriber, by id or by address (``/subscribers/ada@example.com``)."""
    return _subscriber(call, _find(call))


@route("PATCH", "/subscribers/{subscriber:str}", scope="subscribers:write",
       body=SubscriberPatch, response=Subscriber)  # fmt: skip
def update_subscriber(call: Call) -> Subscriber:
    """Change name, attributes, tags or lists (the fields given; tags and lists replace)."""
    body: SubscriberPatch = call.body
    sub = _find(call)
    records.update(call.session, sub, name=_given(body.name), attributes=_given(body.attributes),
                   tag_names=_given(body.tags), lists=_given(body.lists), actor=call.actor,
                   ip=call.ip)  # fmt: skip
    call.target = f"subscriber {sub.id}"
    return _subscriber(call, sub)


@route("POST", "/subscribers/{subscriber:str}/unsubscribe", scope="subscribers:write",
       response=Subscriber)  # fmt: skip
def unsubscribe_subscriber(call: Call) -> Subscriber:
    """Unsubscribe (idempotent)."""
    sub = _find(call)
    if sub.status not in ("bounced", "complained"):
        unsubscribe(call.session, sub, source="api", ip=call.ip)
    call.target = f"subscriber {sub.id}"
    return _subscriber(call, sub)


@route("DELETE", "/subscribers/{subscriber:str}", scope="subscribers:write", response=None,
       status=204)  # fmt: skip
def erase_subscriber(call: Call) -> None:
    """Erase a person (GDPR): their data is deleted, the address suppressed for good."""
    sub = _find(call)
    call.target = f"subscriber {sub.id}"
    erase(call.session, sub)


# -- lists and segments ---------------------------------------------------------------------


@route("GET", "/lists", scope="lists:read", response=list[MailingList])
def get_lists(call: Call) -> list[MailingList]:
    """Every list with its member counts."""
    return [
        MailingList(
            name=m.name, description=m.description, active=c.get("active", 0), total=sum(c.values())
        )
        for m, c in list_counts(call.session)
    ]


@route("POST", "/lists", scope="lists:write", body=ListIn, response=MailingList, status=201)
def add_list(call: Call) -> MailingList:
    """Create a list."""
    body: ListIn = call.body
    mlist = create_list(call.session, body.name, body.description)
    call.target = f"list {mlist.name}"
    return MailingList(name=mlist.name, description=mlist.description, active=0, total=0)


@route("GET", "/segments", scope="segments:read", response=list[Segment])
def get_segments(call: Call) -> list[Segment]:
    """Every segment and its expression."""
    return [
        Segment(name=s.name, expression=s.expression)
        for s in segment_service.list_segments(call.session)
    ]


@route("GET", "/segments/{name:str}/count", scope="segments:read", response=SegmentCount)
def count_segment(call: Call) -> SegmentCount:
    """How many active subscribers match a segment now."""
    found = segment_service.show_segment(
        call.session, call.params["name"], per_subscriber=call.settings.tracking.per_subscriber
    )
    return SegmentCount(name=found.name, expression=found.expression, count=found.count)


# -- posts ----------------------------------------------------------------------------------


@route("GET", "/posts", scope="posts:read", query=PostQuery, response=list[Post])
def get_posts(call: Call) -> list[Post]:
    """Posts, newest first."""
    return [
        msgspec.convert(post_row(p), Post) for p in iter_posts(call.session, limit=call.query.limit)
    ]


@route("POST", "/posts", scope="posts:write", body=PostIn, response=Post, status=201)
def create_post(call: Call) -> Post:
    """A post from Markdown or HTML (sanitised like a feed's); the same ``slug`` again
    updates it."""
    body: PostIn = call.body
    if (body.markdown is None) == (body.html is None):
        raise ApiError(422, "Unprocessable Content", "give exactly one of markdown or html",
                       field="markdown")  # fmt: skip
    html = render_markdown(body.markdown) if body.markdown is not None else body.html or ""
    base = call.settings.site.base_url
    slug = body.slug or ""
    data = build_post(guid=f"api:{slug}" if slug else "", url=body.url, title=body.title,
                      html=html, base_url=base, summary=body.summary)  # fmt: skip
    post, _ = upsert_post(call.session, data, origin="api")
    call.target = f"post {post.id}"
    return msgspec.convert(post_row(post), Post)


# -- issues ---------------------------------------------------------------------------------


def _issue(issue: Any) -> Issue:
    return msgspec.convert(issues.issue_row(issue), Issue)


@route("GET", "/issues", scope="issues:read", response=list[Issue])
def get_issues(call: Call) -> list[Issue]:
    """Issues, newest first."""
    return [_issue(i) for i in issues.iter_issues(call.session)]


@route("POST", "/issues", scope="issues:write", body=IssueIn, response=Issue, status=201)
def create_issue(call: Call) -> Issue:
    """A draft issue of a post (``post_id`` or ``latest``) or a ``digest``, to a list,
    optionally to a ``segment`` or the people ``where`` says."""
    body: IssueIn = call.body
    audience = issues.Audience(segment=body.segment, where=body.where)
    issue = issues.create_issue(
        call.session, call.settings, post_id=body.post_id, latest=body.latest,
        digest=body.digest, list_name=body.list, subject=body.subject, preheader=body.preheader,
        audience=audience,
    )  # fmt: skip
    call.target = f"issue {issue.id}"
    return _issue(issue)


@route("GET", "/issues/{issue_id:int}", scope="issues:read", response=IssueStats)
def get_issue(call: Call) -> dict[str, Any]:
    """An issue and its statistics, as `newsletter issue show --json`."""
    issues.get_issue(call.session, call.params["issue_id"])
    return issue_report(call.session, call.settings, call.params["issue_id"]).as_json()


@route("GET", "/issues/{issue_id:int}/preview", scope="issues:read", response=str,
       media="text/html")  # fmt: skip
def preview_issue(call: Call) -> str:
    """The issue's HTML as a sample reader sees it."""
    from ....issues.preview import SAMPLE

    issue = issues.get_issue(call.session, call.params["issue_id"])
    return prepare(issue, call.settings).html_for(SAMPLE)


@route("POST", "/issues/{issue_id:int}/schedule", scope="issues:write", body=ScheduleIn,
       response=Issue)  # fmt: skip
def schedule_issue(call: Call) -> Issue:
    """Schedule a draft for ``at`` (the daemon sends it then)."""
    issue = issues.get_issue(call.session, call.params["issue_id"])
    issue_schedule.schedule_issue(call.session, issue, call.body.at)
    call.target = f"issue {issue.id}"
    return _issue(issue)


@route("POST", "/issues/{issue_id:int}/send", scope="issues:write", response=Accepted,
       status=202)  # fmt: skip
def send_issue(call: Call) -> Accepted:
    """Start sending now: the audience is fixed in the ledger and `newsletter run` (or
    `newsletter worker`) sends it; 202 with how many deliveries were added."""
    added = open_for_sending(call.session, call.params["issue_id"])
    issue = issues.get_issue(call.session, call.params["issue_id"])
    call.target = f"issue {issue.id}"
    return Accepted(id=issue.id, status=issue.status, added=added)


def _status_action(call: Call, action: str) -> Issue:
    issue = set_issue_status(call.session, call.params["issue_id"], action)
    call.target = f"issue {issue.id}"
    return _issue(issue)


@route("POST", "/issues/{issue_id:int}/pause", scope="issues:write", response=Issue)
def pause_issue(call: Call) -> Issue:
    """Pause a sending or scheduled issue."""
    return _status_action(call, "pause")


@route("POST", "/issues/{issue_id:int}/resume", scope="issues:write", response=Issue)
def resume_issue(call: Call) -> Issue:
    """Resume a paused issue."""
    return _status_action(call, "resume")


@route("POST", "/issues/{issue_id:int}/cancel", scope="issues:write", response=Issue)
def cancel_issue(call: Call) -> Issue:
    """Cancel an issue that is not sent."""
    return _status_action(call, "cancel")


# -- sequences ------------------------------------------------------------------------------


@route("POST", "/sequences/{name:str}/enrollments", scope="sequences:write", body=EnrolIn,
       response=Enrolled, status=201)  # fmt: skip
def enrol(call: Call) -> Enrolled:
    """Put a reader (``email`` or ``subscriber_id``, an active member of the sequence's list)
    into a sequence; ``restart`` starts it again for one already in it."""
    body: EnrolIn = call.body
    if (body.email is None) == (body.subscriber_id is None):
        raise ApiError(422, "Unprocessable Content", "give exactly one of email or subscriber_id",
                       field="email")  # fmt: skip
    who = body.email if body.email is not None else str(body.subscriber_id)
    n, refused = sequences.enrol(call.session, call.params["name"], [who], restart=body.restart)
    if refused:
        raise ApiError(422, "Unprocessable Content", refused[0], field="email")
    call.target = f"sequence {call.params['name']}"
    return Enrolled(sequence=call.params["name"], enrolled=n)


# -- webhooks -------------------------------------------------------------------------------


@route("GET", "/webhooks", scope="webhooks:read", response=list[Webhook])
def get_webhooks(call: Call) -> list[Webhook]:
    """Outgoing webhooks (without their secrets)."""
    return [msgspec.convert(w, Webhook) for w in webhooks.list_webhooks(call.session)]


@route("POST", "/webhooks", scope="webhooks:write", body=WebhookIn, response=NewWebhook,
       status=201)  # fmt: skip
def add_webhook(call: Call) -> NewWebhook:
    """Add a webhook: events are POSTed to ``url`` signed per Standard Webhooks with the
    ``secret`` in the answer (shown once). Private and loopback targets are refused unless
    ``[webhooks] allow_private``."""
    body: WebhookIn = call.body
    hook, secret = webhooks.add_webhook(call.session, call.settings.webhooks, body.url,
                                        body.events, name=body.name)  # fmt: skip
    call.target = f"webhook {hook.name}"
    row = next(w for w in webhooks.list_webhooks(call.session) if w["name"] == hook.name)
    return msgspec.convert(row | {"secret": secret}, NewWebhook)


@route("DELETE", "/webhooks/{name:str}", scope="webhooks:write", response=None, status=204)
def remove_webhook(call: Call) -> None:
    """Remove a webhook."""
    webhooks.remove_webhook(call.session, call.params["name"])
    call.target = f"webhook {call.params['name']}"


__all__ = ["api"]
