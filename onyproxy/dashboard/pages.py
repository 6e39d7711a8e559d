"""What every dashboard view shares: the request's viewer, guards, rendering and redirects.

A view is ``async def view(request) -> web.StreamResponse`` wrapped in :func:`page` with what
it needs: ``"viewer"`` (anyone signed in), ``"account"`` (signed in with an API key, so there
is an account to show), ``"owner"`` (signed in with an owner key: may manage the account),
``"admin"``, or ``None`` (public). A guard that fails sends a page to
the sign-in form and a JSON view (``/ui/api/...``) a 401/403 JSON error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, Literal
from urllib.parse import quote

import aiohttp_jinja2
import orjson
from aiohttp import web

from onyproxy.appkeys import GATEWAY
from onyproxy.dashboard.consent import Consent, read_consent
from onyproxy.dashboard.session import Signer
from onyproxy.dashboard.signin import Viewer
from onyproxy.gateway import Gateway
from onyproxy.storage import Store

SIGNER: web.RequestKey[Signer] = web.RequestKey("dashboard_signer", Signer)
VIEWER: web.RequestKey[Any] = web.RequestKey("dashboard_viewer", object)
CSRF_BASIS: web.RequestKey[str] = web.RequestKey("dashboard_csrf_basis", str)

Need = Literal["viewer", "account", "owner", "admin"] | None
View = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(need: Need) -> Callable[[View], View]:
    """Guard a view: see the module docs."""

    def wrap(view: View) -> View:
        @wraps(view)
        async def guarded(request: web.Request) -> web.StreamResponse:
            refusal = _refusal(request, need)
            return refusal if refusal is not None else await view(request)
        return guarded
    return wrap


def _refusal(request: web.Request, need: Need) -> web.StreamResponse | None:
    viewer = viewer_of(request)
    if need is None:
        return None
    if viewer is None:
        if is_api(request):
            return json_error(401, "Sign in to the dashboard first.")
        return redirect(f"/ui/signin?next={quote(request.path_qs, safe='/')}")
    if need == "admin" and not viewer.is_admin:
        return _forbidden(request, "This page is for administrators.")
    if need in ("account", "owner") and viewer.account is None:
        return _forbidden(request, "Sign in with an API key to see your account's pages; an "
                                   "admin token opens the admin pages only.")
    if need == "owner" and not viewer.owner:
        return _forbidden(request, "This page is for the account's owner key; the key you "
                                   "signed in with may see only its own usage.")
    return None


def _forbidden(request: web.Request, message: str) -> web.StreamResponse:
    if is_api(request):
        return json_error(403, message)
    return render(request, "error.html", {"title": "Not allowed", "message": message},
                  status=403)


def viewer_of(request: web.Request) -> Viewer | None:
    return request.get(VIEWER)


def account_id(request: web.Request) -> str:
    """The signed-in account (only in views guarded with ``"account"``)."""
    viewer = viewer_of(request)
    assert viewer is not None and viewer.account is not None
    return viewer.account.id


def own_key_only(request: web.Request) -> str | None:
    """The key whose figures a read-only session may see, or ``None`` for the whole account
    (an owner key's session)."""
    viewer = viewer_of(request)
    assert viewer is not None
    return None if viewer.owner else viewer.session.key_id


def gateway(request: web.Request) -> Gateway:
    return request.config_dict[GATEWAY]


def store(request: web.Request) -> Store:
    return gateway(request).store


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/ui/api/")


def csrf_token(request: web.Request) -> str:
    basis = request.get(CSRF_BASIS)
    return request[SIGNER].csrf_token(basis) if basis else ""


def consent(request: web.Request) -> Consent:
    return read_consent(request)


def secure_cookies(request: web.Request) -> bool:
    return request[SIGNER].secure


def render(request: web.Request, template: str, context: dict[str, Any] | None = None,
           status: int = 200) -> web.Response:
    """A template rendered with the shared context (viewer, CSRF token, consent)."""
    return aiohttp_jinja2.render_template(template, request,
                                          {**shared_context(request), **(context or {})},
                                          status=status)


def redirect(location: str) -> web.Response:
    """303 See Other (after a POST the browser GETs ``location``)."""
    return web.Response(status=303, headers={"Location": location})


def safe_next(value: str | None, default: str = "/ui/") -> str:
    """A redirect target inside the dashboard only (no open redirects)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


def json_error(status: int, message: str) -> web.Response:
    return json_reply({"error": {"message": message, "status": status}}, status)


def shared_context(request: web.Request) -> dict[str, Any]:
    """What the layout needs on every page."""
    return {"viewer": viewer_of(request), "csrf_token": csrf_token(request),
            "consent": consent(request), "path": request.path}
