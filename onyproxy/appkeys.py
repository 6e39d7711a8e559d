"""Typed keys for what the aiohttp application and requests carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from onyproxy.config.model import GatewayConfig
    from onyproxy.gateway import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
CONFIG: web.AppKey[GatewayConfig] = web.AppKey("config")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
