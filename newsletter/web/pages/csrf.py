"""The form-token check every page that changes state shares (see ``web.security``)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from ...errors import FormExpiredError
from ..inputs import form_text
from ..security import CSRF_FIELD, same_origin
from ..state import web_app


def csrf_valid(request: Request, form: FormData, purpose: str, token: str) -> bool:
    """Whether ``form`` was posted from this site with a form token for ``purpose`` on the
    page of link token ``token``, still valid."""
    web = web_app(request)
    return same_origin(request, web.base_url) and web.csrf.verify(
        form_text(form, CSRF_FIELD), purpose, token, now=web.clock()
    )


def form_expired() -> FormExpiredError:
    return FormExpiredError("the form has expired")
