"""What every admin endpoint shares: sign-in, JSON in and out, errors, the audit log.

A module registers its endpoints on an :class:`AdminRouter`; each endpoint is an async function
of one :class:`AdminCall` returning a response (see :func:`reply`). The router signs the caller
in before the endpoint runs and turns the domain errors into JSON errors, so endpoints hold
only their own logic::

    async def show_thing(call: AdminCall) -> web.Response:
        return reply({"id": call.request.match_info["id"]})

    def register(router: AdminRouter) -> None:
        router.get("/things/{id}", show_thing)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from onyproxy.accounts import ValidationError
from onyproxy.admin.auth import Admin, authenticate
from onyproxy.appkeys import GATEWAY
from onyproxy.client_input import check_depth, read_raw
from onyproxy.error_shapes import render_openai
from onyproxy.errors import GatewayError
from onyproxy.gateway import Gateway
from onyproxy.keys import forget_cached_keys
from onyproxy.logs import log_crash
from onyproxy.storage import AuditEntry, ConflictError, NotFoundError, StorageError, Store

PREFIX = "/admin"
JSON = "application/json"


@dataclass(eq=False)
class AdminCall:
    """One signed-in admin request: the request, the gateway, and who is calling."""

    request: web.Request
    gateway: Gateway
    admin: Admin

    @property
    def store(self) -> Store:
        return self.gateway.store

    @property
    def pepper(self) -> str:
        return self.gateway.config.security.key_pepper

    def param(self, name: str) -> str:
        """A path parameter, e.g. ``{account}``."""
        return self.request.match_info[name]

    async def body(self, allowed: Iterable[str]) -> dict[str, Any]:
        """The JSON object sent; a 400 naming the first field not in ``allowed``."""
        raw = await read_raw(self.request)
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise bad_request(None, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise bad_request(None, "The request body must be a JSON object.")
        check_depth(raw, body)  # orjson reads 1024 levels but writes 255: a 400, not a 500
        allowed = set(allowed)
        for name in body:
            if name not in allowed:
                raise bad_request(name, f"Unknown field '{name}' (known: "
                                        f"{', '.join(sorted(allowed))}).", code="unknown_field")
        return body

    async def audit(self, action: str, target: str | None, **details: Any) -> None:
        """Append who did what to whom; ``details`` must hold no secret and no content."""
        await self.store.append_audit(AuditEntry(actor=self.admin.actor, action=action,
                                                 target=target, details=details))

    def forget_keys(self) -> None:
        """Let this worker's auth plugin see a change of keys or accounts at once (other
        workers see it within the plugin's ``cache_ttl_s``)."""
        forget_cached_keys(self.gateway)


Endpoint = Callable[[AdminCall], Awaitable[web.StreamResponse]]


class AdminRouter:
    """Adds admin endpoints under ``/admin``, each behind admin sign-in."""

    def __init__(self, app: web.Application) -> None:
        self._router = app.router

    def get(self, path: str, endpoint: Endpoint) -> None:
        self.add("GET", path, endpoint)

    def post(self, path: str, endpoint: Endpoint) -> None:
        self.add("POST", path, endpoint)

    def patch(self, path: str, endpoint: Endpoint) -> None:
        self.add("PATCH", path, endpoint)

    def delete(self, path: str, endpoint: Endpoint) -> None:
        self.add("DELETE", path, endpoint)

    def add(self, method: str, path: str, endpoint: Endpoint) -> None:
        """``path`` is relative to ``/admin`` and starts with ``/``."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return await _serve(request, endpoint)

        handler.__name__ = getattr(endpoint, "__name__", "admin_endpoint")
        self._router.add_route(method, PREFIX + path, handler)


async def _serve(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    try:
        admin = await authenticate(request, gw)
        return await endpoint(AdminCall(request, gw, admin))
    except GatewayError as err:
        return error(err)
    except ValidationError as exc:
        return error(bad_request(exc.field, f"{exc.field}: {exc.message}"))
    except ConflictError as exc:
        return error(GatewayError(409, "invalid_request_error", f"{exc.field}: {exc.message}",
                                  param=exc.field, code="already_exists"))
    except NotFoundError as exc:
        return error(GatewayError(404, "invalid_request_error",
                                  f"No {exc.kind} '{exc.ident}'.", code="not_found"))
    except StorageError:
        return error(GatewayError(503, "api_error", "The database cannot be reached; try "
                                  "again shortly.", code="storage_unavailable"))
    except Exception as exc:
        log_crash(f"admin {request.method} {request.path[:256]}", exc)  # the client's path
        return error(GatewayError(500, "api_error", "Internal gateway error.",
                                  code="internal_error"))


def bad_request(param: str | None, message: str, code: str = "invalid_value") -> GatewayError:
    """A 400 naming the field at fault."""
    return GatewayError(400, "invalid_request_error", message, param=param, code=code)


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON)


def error(err: GatewayError) -> web.Response:
    """``{"error": {"message", "type", "param", "code"}}`` with the error's status."""
    return web.Response(body=orjson.dumps(render_openai(err)), status=err.status,
                        content_type=JSON, headers=err.headers)
