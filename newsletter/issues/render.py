"""An issue rendered once, for sending and for previews alike."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..compose import PreparedIssue, prepare_issue
from ..config import Settings
from ..store.models import Issue
from . import archive
from .service import issue_content


def prepare(issue: Issue, settings: Settings) -> PreparedIssue:
    """Render the issue once (templates from [templates] dir, else the built-in ones), with
    its web-view link (signed for a private issue: the issue must be in a session)."""
    session = Session.object_session(issue)
    path = archive.web_path(session, issue, settings) if session is not None else ""
    return prepare_issue(issue_content(issue, web_path=path), settings)
