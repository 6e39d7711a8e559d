"""The admin API under ``/admin/`` (JSON, signed in with an admin JWT or an admin API key).

Each module here owns one kind of record and has ``register(router)``, which adds its endpoints
to an :class:`~onyproxy.admin.api.AdminRouter`. The router signs the caller in, turns domain
errors into ``{"error": {"message", "type", "param", "code"}}`` answers and hands each endpoint
an :class:`~onyproxy.admin.api.AdminCall` (store, pepper, ``body()``, ``audit()``). To add a
module: write ``onyproxy/admin/<name>.py`` with ``register(router)`` and list it in
``MODULES``. Every write must call ``call.audit(action, target, ...)``.

The admin API does not run the plugin pipeline; the core middleware still gives every answer
an ``x-request-id``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

MODULES = ["accounts", "keys", "privacy", "usage", "invoices"]


def add_admin_routes(app: web.Application) -> None:
    """Register every module's endpoints under ``/admin``."""
    # Imported here: the CLI uses onyproxy.admin.records and should not pay for the web stack.
    from onyproxy.admin.api import AdminRouter

    router = AdminRouter(app)
    for name in MODULES:
        importlib.import_module(f"onyproxy.admin.{name}").register(router)
