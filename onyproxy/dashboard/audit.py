"""Dashboard writes in the audit log, revoking a key with what it created, and telling this
worker's auth cache about key changes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from onyproxy.dashboard.pages import gateway, viewer_of
from onyproxy.keys import forget_cached_keys, revoke_created_by, revoke_key
from onyproxy.storage import ApiKey, AuditEntry


async def audit(request: web.Request, action: str, target: str | None, **details: Any) -> None:
    """Append who did what to whom (``details`` hold no secret and no content)."""
    viewer = viewer_of(request)
    actor = viewer.actor if viewer is not None else "anonymous"
    await gateway(request).store.append_audit(
        AuditEntry(actor=actor, action=action, target=target, details={**details,
                                                                        "via": "dashboard"}))


def forget_keys(request: web.Request) -> None:
    """Let this worker's auth plugin drop cached keys at once (others within its TTL)."""
    forget_cached_keys(gateway(request))


async def revoke_with_created(request: web.Request, key: ApiKey) -> None:
    """Revoke ``key`` and the keys created in its sessions, each audited; forget them here."""
    db = gateway(request).store
    await revoke_key(db, key.id)
    await audit(request, "key.revoke", key.id, account_id=key.account_id)
    for child in await revoke_created_by(db, key):
        await audit(request, "key.revoke", child.id, account_id=child.account_id,
                    created_by=child.created_by)
    forget_keys(request)
