"""Data-subject rights (KVKK art. 11): export, correct, erase, object; each one audited.

Every action appends an audit entry: who (``actor``), what (``action``), when, about whom
(``target``, the account id) and why (``details.reason``). Audit entries can never be changed
or erased, so they hold ids and field names only, never the personal data itself: otherwise
an erasure would leave the erased data behind in the log.
"""

from __future__ import annotations

from typing import Any

from onyproxy.accounts import ValidationError, get_account, update_account
from onyproxy.admin.records import timestamp
from onyproxy.config.model import GatewayConfig
from onyproxy.privacy.export import export_subject
from onyproxy.privacy.recipients import recipients
from onyproxy.storage import (
    Account,
    AuditEntry,
    NotFoundError,
    SecurityEvent,
    Store,
    new_id,
    utcnow,
)
from onyproxy.storage.privacy import OBJECTION_STATUSES, Objection

#: What ``subject correct --field`` accepts; billing fields are corrected one at a time.
CORRECTABLE = ("name", "first_name", "last_name", "email", "phone", "company",
               "billing.tax_id", "billing.address")
MAX_REASON = 2000
SUSPENSIONS = 10_000  # an account's automatic suspensions searched for ``--event``


def erased_email(account_id: str) -> str:
    """The placeholder address of an erased account: unique (the email index must hold) and
    undeliverable (``.invalid`` is reserved by RFC 2606)."""
    return f"erased-{account_id}@invalid"


def is_erased(account: Account) -> bool:
    return account.email == erased_email(account.id)


def _reason(value: str | None, *, required: bool = False) -> str | None:
    text = " ".join((value or "").split())
    if not text:
        if required:
            raise ValidationError("reason", "is required: say what the objection is about")
        return None
    if len(text) > MAX_REASON:
        raise ValidationError("reason", f"is longer than {MAX_REASON} characters")
    return text


async def record(store: Store, actor: str, action: str, target: str | None,
                 reason: str | None, **details: Any) -> None:
    """Append one audit entry; ``reason`` is the "why" (no personal data in ``details``)."""
    if reason:
        details["reason"] = reason
    await store.append_audit(AuditEntry(actor=actor, action=action, target=target,
                                        details=details))


async def export(store: Store, config: GatewayConfig, ident: str, *, actor: str,
                 reason: str | None = None) -> dict[str, Any]:
    """Everything held about the account ``ident`` (id or email), as JSON."""
    account = await get_account(store, ident)
    document = await export_subject(store, config, account)
    await record(store, actor, "subject.export", account.id, _reason(reason),
                 usage_events=len(document["usage_events"]),
                 security_events=len(document["security_events"]))
    return document


async def correct(store: Store, ident: str, field: str, value: str, *, actor: str,
                  reason: str | None = None) -> Account:
    """Correct one field, validated by the same rules as account updates."""
    account = await get_account(store, ident)
    if field not in CORRECTABLE:
        raise ValidationError("field", f"{field!r} cannot be corrected (one of: "
                                       f"{', '.join(CORRECTABLE)})")
    if is_erased(account):
        raise ValidationError("account", "the account was erased; there is nothing to correct")
    if field.startswith("billing."):
        current = account.billing
        billing = {"tax_id": current.tax_id if current else None,
                   "address": current.address if current else None}
        billing[field.removeprefix("billing.")] = value
        changes: dict[str, Any] = {"billing": billing}
    else:
        changes = {field: value}
    corrected = await update_account(store, account.id, **changes)
    await record(store, actor, "subject.correct", account.id, _reason(reason), field=field)
    return corrected


async def erase(store: Store, config: GatewayConfig, ident: str, *, actor: str,
                reason: str | None = None) -> dict[str, Any]:
    """Erase the person's data now; billing figures stay, tied only to the account id.

    The answer lists the recipients (providers that received the person's requests) that
    must be told about the erasure (KVKK art. 11(1)(f)); the audit entry records them too.
    """
    account = await get_account(store, ident)
    notify = await recipients(store, config, account.id)
    now = utcnow()
    done = await store.erase_subject(account.id, email=erased_email(account.id), at=now)
    await record(store, actor, "subject.erase", account.id, _reason(reason),
                 keys_revoked=done.keys_revoked, usage_events=done.usage_events,
                 security_events=done.security_events,
                 notify=[r["provider"] for r in notify])
    return {"account_id": account.id, "erased_at": timestamp(now),
            "keys_revoked": done.keys_revoked, "usage_events_anonymised": done.usage_events,
            "security_events_anonymised": done.security_events, "notify": notify}


async def object_to(store: Store, ident: str, reason: str, *, actor: str,
                    decision: str | None = None, event_id: str | None = None,
                    key_id: str | None = None) -> Objection:
    """Record an objection to an automated decision, for a person to review.

    When the account has automatic suspensions on record, the objection names the one it
    contests: ``event_id`` (a security event of the account with action ``suspend``), else
    the latest suspension (of ``key_id`` when given, e.g. from the key's own page)."""
    account = await get_account(store, ident)
    text = _reason(reason, required=True) or ""
    contested = await contested_suspension(store, account.id, event_id=event_id,
                                           key_id=key_id)
    objection = await store.add_objection(Objection(
        id=new_id("obj"), account_id=account.id, reason=text, actor=actor, created_at=utcnow(),
        decision=_reason(decision) or suspension_decision(contested),
        event_id=contested.id if contested else None,
        key_id=contested.key_id if contested else None,
        decided_at=contested.at if contested else None))
    # The reason is the person's own words and may name them: it stays in the objection
    # (erased with the account), not in the audit log.
    await record(store, actor, "subject.object", account.id, None, objection_id=objection.id,
                 event_id=objection.event_id)
    return objection


async def contested_suspension(store: Store, account_id: str, *, event_id: str | None = None,
                               key_id: str | None = None) -> SecurityEvent | None:
    """The automatic suspension an objection contests: ``event_id`` (which must be one of
    the account's), else the account's (or ``key_id``'s) latest one; None without any."""
    if event_id is None:
        latest = await store.list_security_events(account_id=account_id, key_id=key_id,
                                                  action="suspend", limit=1, newest_first=True)
        return latest[0] if latest else None
    for event in await store.list_security_events(account_id=account_id, action="suspend",
                                                  limit=SUSPENSIONS, newest_first=True):
        if event.id == event_id:
            return event
    raise ValidationError("event", f"{event_id!r} is not an automatic suspension of account "
                                   f"{account_id} (its security events are in its export)")


def suspension_decision(event: SecurityEvent | None) -> str | None:
    """What an automatic suspension decided, in one line (None without one)."""
    if event is None:
        return None
    return f"key {event.key_id} suspended automatically ({event.kind}): {event.reason}"


async def resolve(store: Store, objection_id: str, outcome: str, resolution: str, *,
                  actor: str) -> Objection:
    """A reviewer's decision on an objection: ``upheld`` or ``rejected``, with a note."""
    if outcome not in OBJECTION_STATUSES[1:]:
        raise ValidationError("outcome", f"must be one of {', '.join(OBJECTION_STATUSES[1:])}")
    note = _reason(resolution)
    if note is None:
        raise ValidationError("resolution", "is required: say what was decided and why")
    if await store.get_objection(objection_id) is None:
        raise NotFoundError("objection", objection_id)
    done = await store.resolve_objection(objection_id, status=outcome,  # type: ignore[arg-type]
                                         by=actor, resolution=note, at=utcnow())
    await record(store, actor, "objection.resolve", done.account_id, None,
                 objection_id=done.id, outcome=outcome)
    return done


def objection_record(objection: Objection) -> dict[str, Any]:
    """The JSON of an objection."""
    o = objection
    return {"id": o.id, "account_id": o.account_id, "reason": o.reason,
            "decision": o.decision, "event_id": o.event_id, "key_id": o.key_id,
            "decided_at": timestamp(o.decided_at), "status": o.status, "actor": o.actor,
            "created_at": timestamp(o.created_at), "resolved_at": timestamp(o.resolved_at),
            "resolved_by": o.resolved_by, "resolution": o.resolution}
