"""Privacy: cookie consent, download my data (KVKK export), erase my account, the policy.

All but the cookie choices need an owner key's session; erasing also asks for an owner key of
the account again (re-authentication), not only the email address shown on the page.

Export and erasure call :mod:`onyproxy.privacy.subject`, which writes the audit entries; the
dashboard adds nothing of its own to either.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from onyproxy.dashboard.consent import Consent, apply_consent, read_consent
from onyproxy.dashboard.pages import (
    SIGNER,
    account_id,
    gateway,
    page,
    redirect,
    render,
    safe_next,
    secure_cookies,
    viewer_of,
)
from onyproxy.dashboard.views.signin import end_session
from onyproxy.keys import find_usable_key
from onyproxy.privacy import policy, subject

ERASE_REASON = "requested by the account holder in the dashboard"


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/privacy", privacy_page)
    router.add_post("/consent", consent)
    router.add_post("/privacy/export", export)
    router.add_post("/privacy/erase", erase)
    router.add_post("/privacy/policy", accept_policy)


@page(None)
async def privacy_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@page(None)
async def consent(request: web.Request) -> web.StreamResponse:
    """The banner's buttons (``choice=all|essential``) or the settings form (checkboxes)."""
    form = await request.post()
    choice = form.get("choice")
    if choice == "all":
        chosen = Consent(functional=True, analytics=True, given=True)
    elif choice == "essential":
        chosen = Consent(given=True)
    else:
        chosen = Consent(functional=form.get("functional") == "on",
                         analytics=form.get("analytics") == "on", given=True)
    response = redirect(safe_next(str(form.get("next", "")), "/ui/privacy"))
    apply_consent(request, response, chosen, secure=secure_cookies(request))
    return response


@page("owner")
async def export(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    viewer = viewer_of(request)
    assert viewer is not None
    document = await subject.export(gw.store, gw.config, account_id(request),
                                    actor=viewer.actor, reason="downloaded in the dashboard")
    return web.Response(
        body=orjson.dumps(document, option=orjson.OPT_INDENT_2), content_type="application/json",
        headers={"Content-Disposition":
                 f'attachment; filename="onyproxy-data-{account_id(request)}.json"'})


@page("owner")
async def erase(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    viewer = viewer_of(request)
    assert viewer is not None and viewer.account is not None
    typed = str(form.get("confirm_email", "")).strip().lower()
    if form.get("understand") != "on" or typed != viewer.account.email:
        return await _page(request, status=400, erase_error=(
            "Tick the box and type your account's email address exactly to confirm."))
    gw = gateway(request)
    # Re-authentication: a session left open on a shared screen must not erase the account.
    found = await find_usable_key(gw.store, str(form.get("confirm_key", "")),
                                  gw.config.security.key_pepper)
    if found is None or found[1].id != viewer.account.id or not found[0].owner:
        return await _page(request, status=403, erase_error=(
            "Enter an owner API key of this account again to confirm the erasure."))
    result = await subject.erase(gw.store, gw.config, viewer.account.id, actor=viewer.actor,
                                 reason=ERASE_REASON)
    await end_session(request, viewer.session)
    response = render(request, "erased.html", {"title": "Your data was erased",
                                               "result": result, "viewer": None})
    request[SIGNER].clear_session_cookie(response)  # its key was just revoked
    return response


@page("owner")
async def accept_policy(request: web.Request) -> web.StreamResponse:
    """Accept the policy version in force (the form names it, so a version that changed
    while the page was open is not accepted unseen)."""
    form = await request.post()
    gw = gateway(request)
    version = gw.config.privacy.policy_version
    viewer = viewer_of(request)
    assert viewer is not None
    if not version or form.get("version") != version:
        return await _page(request, policy_error="The policy changed while this page was "
                                                 "open; read the new version and accept it.",
                           status=409)
    await policy.accept(gw.store, gw.config, account_id(request), actor=viewer.actor,
                        version=version)
    return redirect("/ui/privacy#policy")


async def _page(request: web.Request, *, erase_error: str | None = None,
                policy_error: str | None = None, status: int = 200) -> web.Response:
    gw = gateway(request)
    viewer = viewer_of(request)
    accepted = None
    if viewer is not None and viewer.account is not None:
        accepted = (await gw.store.policy_statuses([viewer.account.id])).get(viewer.account.id)
    return render(request, "privacy.html", {
        "title": "Privacy and cookies", "choice": read_consent(request),
        "privacy": gw.config.privacy, "accepted": accepted, "policy_error": policy_error,
        "erase_error": erase_error}, status=status)
