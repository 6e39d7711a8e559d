"""Admin endpoints for data-subject rights, objections, the audit chain and policy versions.

- ``GET /admin/subjects/{account}/export`` → everything held about the person (JSON)
- ``POST /admin/subjects/{account}/correct`` ``{field, value, reason}`` → the account
- ``POST /admin/subjects/{account}/erase`` ``{reason}`` → what was erased and ``notify``:
  the recipients to tell
- ``POST /admin/subjects/{account}/objections`` ``{reason, decision, event}`` → 201 objection
  (``event``: the automatic suspension contested; default the account's latest one)
- ``GET /admin/objections?status=&account=`` → ``{"data": [objection, ...]}``
- ``POST /admin/objections/{id}/resolve`` ``{outcome: upheld|rejected, resolution}``
- ``GET /admin/audit/verify`` → ``{ok, entries, head, problem, first_bad_entry}``
- ``GET /admin/privacy/policy`` → ``{version, pending: [...]}``: who has not accepted it
- ``POST /admin/accounts/{account}/policy`` ``{version}`` → record an acceptance on the
  person's behalf (``version`` defaults to the one in force)

Every write, and every export, is in the audit log with the admin as actor and ``reason``.
"""

from __future__ import annotations

from aiohttp import web

from onyproxy.accounts import get_account
from onyproxy.admin.api import AdminCall, AdminRouter, bad_request, reply
from onyproxy.admin.records import account_record
from onyproxy.privacy import policy, subject
from onyproxy.privacy.anchor import anchor_path, read_anchors
from onyproxy.privacy.audit import verify_audit
from onyproxy.storage.privacy import OBJECTION_STATUSES


def register(router: AdminRouter) -> None:
    router.get("/subjects/{account}/export", export)
    router.post("/subjects/{account}/correct", correct)
    router.post("/subjects/{account}/erase", erase)
    router.post("/subjects/{account}/objections", object_to)
    router.get("/objections", list_objections)
    router.post("/objections/{objection}/resolve", resolve)
    router.get("/audit/verify", verify)
    router.get("/privacy/policy", policy_status)
    router.post("/accounts/{account}/policy", accept_policy)


def _text(body: dict, name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad_request(name, f"{name} is required and must be a string.")
    return value


async def export(call: AdminCall) -> web.Response:
    reason = call.request.query.get("reason")
    document = await subject.export(call.store, call.gateway.config, call.param("account"),
                                    actor=call.admin.actor, reason=reason)
    return reply(document)


async def correct(call: AdminCall) -> web.Response:
    body = await call.body(("field", "value", "reason"))
    field = _text(body, "field", required=True) or ""
    value = body.get("value")
    if value is not None and not isinstance(value, str):
        raise bad_request("value", "value must be a string (or null to clear the field).")
    account = await subject.correct(call.store, call.param("account"), field, value or "",
                                    actor=call.admin.actor, reason=_text(body, "reason"))
    return reply(account_record(account))


async def erase(call: AdminCall) -> web.Response:
    body = await call.body(("reason",))
    done = await subject.erase(call.store, call.gateway.config, call.param("account"),
                               actor=call.admin.actor, reason=_text(body, "reason"))
    call.forget_keys()  # the revoked keys stop working on this worker at once
    return reply(done)


async def object_to(call: AdminCall) -> web.Response:
    body = await call.body(("reason", "decision", "event"))
    objection = await subject.object_to(call.store, call.param("account"),
                                        _text(body, "reason", required=True) or "",
                                        actor=call.admin.actor,
                                        decision=_text(body, "decision"),
                                        event_id=_text(body, "event"))
    return reply(subject.objection_record(objection), status=201)


async def list_objections(call: AdminCall) -> web.Response:
    query = call.request.query
    status = query.get("status") or None
    if status is not None and status not in OBJECTION_STATUSES:
        raise bad_request("status", f"status must be one of {', '.join(OBJECTION_STATUSES)}.")
    account_id = None
    if query.get("account"):
        account_id = (await get_account(call.store, query["account"])).id
    found = await call.store.list_objections(account_id=account_id,
                                             status=status)  # type: ignore[arg-type]
    return reply({"data": [subject.objection_record(o) for o in found]})


async def resolve(call: AdminCall) -> web.Response:
    body = await call.body(("outcome", "resolution"))
    done = await subject.resolve(call.store, call.param("objection"),
                                 _text(body, "outcome", required=True) or "",
                                 _text(body, "resolution", required=True) or "",
                                 actor=call.admin.actor)
    return reply(subject.objection_record(done))


async def verify(call: AdminCall) -> web.Response:
    # With the audit key and against the anchor file, as `onyproxy audit verify` checks.
    anchors = read_anchors(anchor_path(call.gateway.config))
    check = await verify_audit(call.store, key=call.store.audit_key, anchors=anchors)
    return reply({**check.as_json(), "anchors_checked": len(anchors)})


async def policy_status(call: AdminCall) -> web.Response:
    version = policy.current_version(call.gateway.config)
    pending = await policy.pending_accounts(call.store, version)
    return reply({"version": version,
                  "pending": [policy.pending_record(a, s) for a, s in pending]})


async def accept_policy(call: AdminCall) -> web.Response:
    body = await call.body(("version",))
    status = await policy.accept(call.store, call.gateway.config, call.param("account"),
                                 actor=call.admin.actor, version=_text(body, "version"))
    return reply(policy.status_record(status))
