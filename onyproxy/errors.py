"""The one error type of the gateway.

Anything that rejects a request raises :class:`GatewayError`; the core renders it in the shape of
the API the client called (see :mod:`onyproxy.error_shapes`). The message must never contain
prompt or completion text, nor a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class GatewayError(Exception):
    """A request failed in a way the client must be told about.

    ``type`` follows OpenAI's vocabulary (``invalid_request_error``, ``authentication_error``,
    ``rate_limit_error``, ``api_error`` ...); the renderers map it to the other surfaces.
    """

    status: int
    type: str
    message: str
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"


def invalid_request(message: str, param: str | None = None,
                    code: str | None = None) -> GatewayError:
    """A 400 for a request the client must fix."""
    return GatewayError(400, "invalid_request_error", message, param=param, code=code)


def model_not_found(model: str) -> GatewayError:
    """A 404 naming the model the client asked for."""
    return GatewayError(
        404, "invalid_request_error", f"The model '{model}' does not exist on this gateway.",
        param="model", code="model_not_found",
    )


class StartupError(Exception):
    """The gateway cannot start; the message says why, for a person to read (it names what
    failed: the storage, the listen socket, a plugin's resource). A plugin's ``start`` raises
    it for a failure of its own, e.g. a folder it cannot create."""
