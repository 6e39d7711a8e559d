"""Dashboard writes in the audit log, and telling this worker's auth cache about key changes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from onyproxy.dashboard.pages import gateway, viewer_of
from onyproxy.keys import forget_cached_keys
from onyproxy.storage import AuditEntry


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
