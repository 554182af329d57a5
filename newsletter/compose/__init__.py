"""The composer: an issue rendered once, personalised and assembled per recipient.

    prepared = prepare_issue(content, settings)      # templates, CSS inlining: once
    data = prepared.message_bytes(recipient)         # per recipient: microseconds

``prepare_issue`` raises ContentError (template, issue) or ConfigError (sender/site
settings); per-recipient methods raise InvalidEmailError for an address that cannot be put
in a header. ``render_web_html`` gives the archive page of an issue.
"""

from .inline import Inliner, inline_css
from .models import IssueContent, PostView, Recipient
from .prepared import (
    DEFAULT_NAME_FALLBACK,
    PERSONAL_FIELDS,
    PreparedIssue,
    prepare_issue,
    render_web_html,
)

__all__ = [
    "DEFAULT_NAME_FALLBACK",
    "PERSONAL_FIELDS",
    "Inliner",
    "IssueContent",
    "PostView",
    "PreparedIssue",
    "Recipient",
    "inline_css",
    "prepare_issue",
    "render_web_html",
]
