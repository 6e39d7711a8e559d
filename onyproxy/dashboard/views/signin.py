"""Sign-in with an API key or an admin JWT, and sign-out."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from onyproxy.dashboard.pages import (
    SIGNER,
    gateway,
    page,
    redirect,
    render,
    safe_next,
    viewer_of,
)
from onyproxy.dashboard.session import Session
from onyproxy.dashboard.signin import SignInError, sign_in


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/", index)
    router.add_get("/signin", signin_form)
    router.add_post("/signin", signin)
    router.add_post("/signout", signout)


@page(None)
async def index(request: web.Request) -> web.StreamResponse:
    viewer = viewer_of(request)
    if viewer is None:
        return redirect("/ui/signin")
    return redirect("/ui/usage" if viewer.account is not None else "/ui/admin/accounts")


@page(None)
async def signin_form(request: web.Request) -> web.StreamResponse:
    if viewer_of(request) is not None:
        return redirect(safe_next(request.query.get("next")))
    return _form(request, next_url=request.query.get("next", ""))


@page(None)
async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    credential = str(form.get("credential", ""))
    next_url = str(form.get("next", ""))
    gw = gateway(request)
    security = gw.config.security
    try:
        session = await sign_in(credential, gw.store, security, request[SIGNER])
    except SignInError as exc:
        if gw.metrics is not None:
            gw.metrics.auth_failure("ui")
        guard = gw.failure_guard  # the API's and the admin API's slow-down and block
        refusal = await guard.failed(guard.client(request.remote, request.headers),
                                     credential.strip())
        if refusal is not None:
            return _form(request, next_url=next_url, error=refusal.message, status=429)
        return _form(request, next_url=next_url, error=str(exc), status=401)
    target = safe_next(next_url, "/ui/usage" if session.account_id else "/ui/admin/accounts")
    response = redirect(target)
    request[SIGNER].set_session_cookie(response, session)
    return response


@page(None)
async def signout(request: web.Request) -> web.StreamResponse:
    viewer = viewer_of(request)
    if viewer is not None:
        await end_session(request, viewer.session)
    response = redirect("/ui/signin")
    request[SIGNER].clear_session_cookie(response)
    return response


async def end_session(request: web.Request, session: Session) -> None:
    """End a session on the server too: a copy of its cookie stops working everywhere."""
    until = datetime.fromtimestamp(session.expires, UTC)
    await gateway(request).store.revoke_session(session.sid, until)


def _form(request: web.Request, *, next_url: str, error: str | None = None,
          status: int = 200) -> web.Response:
    return render(request, "signin.html",
                  {"title": "Sign in", "next_url": safe_next(next_url, ""), "error": error},
                  status=status)
