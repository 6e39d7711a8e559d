"""Where each SDK puts the API key, and reading it from a request."""

from __future__ import annotations

from collections.abc import Mapping

# In the order they are looked at. OpenAI SDKs and current Anthropic SDKs (with an auth token)
# send Authorization: Bearer; Anthropic SDKs with an api_key send x-api-key; google-genai sends
# x-goog-api-key, and older Gemini clients and curl examples use ?key=.
KEY_HEADERS = ("x-api-key", "x-goog-api-key")
KEY_QUERY = "key"


def read_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The API key the client presented, or ``None`` when it sent none."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value and value.strip():
            return value.strip()
    value = query.get(KEY_QUERY)
    return value.strip() if value and value.strip() else None
