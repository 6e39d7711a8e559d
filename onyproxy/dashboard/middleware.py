"""The dashboard's middleware: session, CSRF check, security headers and HTML error pages.

It runs inside the gateway's own middleware (which adds ``x-request-id``) for every path under
``/ui/``. A POST must carry the form token of its session (see
:mod:`onyproxy.dashboard.session`) and, when the browser sends ``Origin``, come from this
host; otherwise it is refused with 403 before any view runs. A read-only session (a key
without the owner role, see :mod:`onyproxy.dashboard.signin`) may POST only to sign in or out
and to set its cookie choices: any other POST is a 403 whatever the view's own guard says.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from aiohttp import web

from onyproxy.appkeys import GATEWAY
from onyproxy.config.model import GatewayConfig
from onyproxy.dashboard.pages import CSRF_BASIS, SIGNER, VIEWER, is_api, json_error, render
from onyproxy.dashboard.session import (
    ANON_COOKIE,
    CLOCK,
    COOKIE,
    Signer,
    derive_secret,
    new_anon_basis,
)
from onyproxy.dashboard.signin import current_viewer
from onyproxy.logs import log_crash
from onyproxy.storage import NotFoundError, StorageError

STATIC = "/ui/static/"
CSRF_FIELD = "csrf"
SECURITY_HEADERS = {
    # No inline script or style anywhere: charts are SVG elements styled by the stylesheet.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
CSRF_MESSAGE = ("This form has expired or was sent from another site. Go back, reload the "
                "page and try again.")


#: What a read-only session may still POST: signing in again, signing out, its cookie choices.
READ_ONLY_POSTS = frozenset({"/ui/signout", "/ui/consent", "/ui/signin"})
READ_ONLY_MESSAGE = ("This key's dashboard session is read-only: only an owner key may create "
                     "or revoke keys, change the account or erase it.")


def signer_for(config: GatewayConfig, clock=time.time) -> Signer:
    server = config.server
    return Signer(derive_secret(config.security.key_pepper),
                  secure=server.tls is not None or server.behind_https_proxy, clock=clock)


@web.middleware
async def dashboard_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.path.startswith(STATIC):
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response
    try:
        response = await _serve(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(SECURITY_HEADERS)
            raise
        response = _error(request, exc.status, exc.reason)
    except NotFoundError:
        response = _error(request, 404, "There is no such record, or it is not yours.")
    except StorageError:
        response = _error(request, 503, "The database cannot be reached; try again shortly.")
    except Exception as exc:
        log_crash(f"dashboard {request.method} {request.path}", exc)
        response = _error(request, 500, "Something went wrong on our side.")
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _serve(request: web.Request, handler) -> web.StreamResponse:
    gw = request.config_dict[GATEWAY]
    signer = request[SIGNER] = signer_for(gw.config, request.config_dict.get(CLOCK, time.time))
    session = signer.decode(request.cookies.get(COOKIE))
    viewer = request[VIEWER] = await current_viewer(session, gw.store, gw.config.security,
                                                    signer.now())
    anon = request.cookies.get(ANON_COOKIE)
    fresh_anon = viewer is None and not anon
    if viewer is not None:
        request[CSRF_BASIS] = viewer.session.sid
    else:
        request[CSRF_BASIS] = anon = anon or new_anon_basis()
    if request.method == "POST" and not await _csrf_ok(request, signer):
        response: web.StreamResponse = _error(request, 403, CSRF_MESSAGE)
    elif request.method == "POST" and viewer is not None and not viewer.can_write \
            and request.path not in READ_ONLY_POSTS:
        response = _error(request, 403, READ_ONLY_MESSAGE)
    else:
        response = await handler(request)
    if request.cookies.get(COOKIE) and viewer is None and not _signed_in_now(response):
        signer.clear_session_cookie(response)  # expired, forged, or its key was revoked
    if fresh_anon and anon:
        signer.set_anon_cookie(response, anon)
    return response


async def _csrf_ok(request: web.Request, signer: Signer) -> bool:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        return False
    form = await request.post()
    token = form.get(CSRF_FIELD)
    return isinstance(token, str) and signer.csrf_ok(request[CSRF_BASIS], token)


def _signed_in_now(response: web.StreamResponse) -> bool:
    morsel = response.cookies.get(COOKIE)
    return morsel is not None and bool(morsel.value)


def _error(request: web.Request, status: int, message: str) -> web.Response:
    if is_api(request):
        return json_error(status, message)
    if SIGNER not in request:
        return web.Response(status=status, text=message)
    titles = {403: "Not allowed", 404: "Page not found", 503: "Unavailable"}
    return render(request, "error.html",
                  {"title": titles.get(status, "Error"), "message": message}, status=status)
