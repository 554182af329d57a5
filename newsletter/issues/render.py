"""An issue rendered once, for sending and for previews alike."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..compose import PreparedIssue, prepare_issue
from ..config import Settings
from ..store.models import Issue
from ..tracking import plan as tracking
from . import archive
from .service import issue_content


def prepare(issue: Issue, settings: Settings, *, tracked: bool = False) -> PreparedIssue:
    """Render the issue once (templates from [templates] dir, else the built-in ones), with
    its web-view link (signed for a private issue: the issue must be in a session).

    ``tracked``: the messages of a send, whose links ``[tracking]`` counts (the issue's links
    are stored for the redirector); previews and test messages keep the links as written.
    """
    session = Session.object_session(issue)
    path = archive.web_path(session, issue, settings) if session is not None else ""
    plan = None
    if tracked and session is not None:
        web_url = f"{settings.site.base_url.rstrip('/')}{path or '/archive'}"  # as compose
        plan = tracking.link_plan(session, settings, issue.id, web_url)
    prepared = prepare_issue(issue_content(issue, web_path=path), settings, tracking=plan)
    if plan is not None:
        tracking.save_links(session, plan)
    return prepared
