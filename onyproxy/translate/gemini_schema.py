"""Gemini ``Schema`` objects (an OpenAPI 3.0 subset) as JSON Schema, for OpenAI's tools and
``response_format``.

Differences handled: types are upper-case enum names (``OBJECT``), ``nullable: true`` instead of a
``"null"`` type, int64 limits written as strings in proto JSON, field names in either spelling,
and ``propertyOrdering`` / ``example``, which JSON Schema has no use for. JSON Schema given as
``parametersJsonSchema`` / ``responseJsonSchema`` needs none of this and is passed as it is.
"""

from __future__ import annotations

from typing import Any

from onyproxy.translate.gemini_common import snake

_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_COPIED = ("format", "title", "description", "enum", "required", "pattern", "minimum",
           "maximum", "default")


def json_schema(schema: Any) -> Any:
    """The JSON Schema equivalent of a Gemini ``Schema``."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    kind = _get(schema, "type")
    if isinstance(kind, str) and kind.upper() != "TYPE_UNSPECIFIED":
        out["type"] = kind.lower()
    for name in _COPIED:
        if _get(schema, name) is not None:
            out[name] = _get(schema, name)
    for name in _COUNTS:
        if _get(schema, name) is not None:
            out[name] = int(_get(schema, name))
    properties = _get(schema, "properties")
    if isinstance(properties, dict):  # property names are the user's: never re-spelled
        out["properties"] = {key: json_schema(value) for key, value in properties.items()}
    if _get(schema, "items") is not None:
        out["items"] = json_schema(_get(schema, "items"))
    any_of = _get(schema, "anyOf")
    if isinstance(any_of, list):
        out["anyOf"] = [json_schema(option) for option in any_of]
    if _get(schema, "nullable") is True:
        _allow_null(out)
    return out


def _get(schema: dict[str, Any], name: str) -> Any:
    value = schema.get(name)
    return schema.get(snake(name)) if value is None else value


def _allow_null(out: dict[str, Any]) -> None:
    if "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    elif "anyOf" in out:
        out["anyOf"].append({"type": "null"})
