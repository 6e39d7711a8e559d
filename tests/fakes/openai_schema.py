"""Check objects against the OpenAI API's own published schemas.

Where the schemas come from
---------------------------
``tests/data/openai_schemas.json`` is an extract of the official OpenAPI spec:
repository ``openai/openai-openapi``, file ``openapi.yaml`` at commit
``578000861507cd19620e3f1092adf62303757c0a`` (``info.version: 2.3.0``, autumn 2024).
It holds ``CreateChatCompletionResponse``, ``CreateChatCompletionStreamResponse``,
``CreateEmbeddingResponse``, ``ListModelsResponse`` and ``ErrorResponse`` plus every
component they ``$ref``, transitively, under ``components.schemas`` as in the spec, so
``#/components/schemas/...`` references resolve unchanged. Only ``description`` texts and
``x-oaiMeta`` were removed; the YAML anchor the spec uses for ``choices[].logprobs`` is
written out in both places.

That spec version predates some fields the live API sends today
(``usage.prompt_tokens_details``, ``message.annotations``, the stream ``obfuscation``
field). None of its schemas sets ``additionalProperties: false``, so such extra fields
pass, as they should for a forward-compatible client.

OpenAPI 3.0 is not JSON Schema: ``nullable: true`` means "or null". It is translated when
the file is loaded, into ``type: [..., "null"]`` (and ``null`` added to an ``enum``).

Two places where the spec contradicts the wire, patched here and nowhere else
(:data:`SPEC_GAPS`):

* ``CreateChatCompletionStreamResponse.usage`` is documented as "a null value except for the
  last chunk" when ``stream_options.include_usage`` is set, but is not marked nullable.
* ``Embedding.embedding`` only allows an array of numbers, yet ``encoding_format: base64``
  (which the openai SDK sends by default) returns a base64 string there.

Usage::

    from fakes.openai_schema import validate_openai
    validate_openai("chat.completion", body)      # raises jsonschema.ValidationError
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "data" / "openai_schemas.json"

# Short names for the wire objects, after their `object` field where they have one.
KINDS: dict[str, str] = {
    "chat.completion": "CreateChatCompletionResponse",
    "chat.completion.chunk": "CreateChatCompletionStreamResponse",
    "embedding.list": "CreateEmbeddingResponse",
    "model.list": "ListModelsResponse",
    "error": "ErrorResponse",
}

Schemas = dict[str, Any]


def _nullable_usage(schemas: Schemas) -> None:
    schemas["CreateChatCompletionStreamResponse"]["properties"]["usage"]["nullable"] = True


def _base64_embedding(schemas: Schemas) -> None:
    floats = schemas["Embedding"]["properties"]["embedding"]
    schemas["Embedding"]["properties"]["embedding"] = {
        "anyOf": [floats, {"type": "string", "contentEncoding": "base64"}]
    }


SPEC_GAPS: tuple[Callable[[Schemas], None], ...] = (_nullable_usage, _base64_embedding)


def validate_openai(kind: str, obj: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` matches the spec's schema.

    ``kind`` is a key of :data:`KINDS` or a component name such as ``"Embedding"``.
    """
    error = best_match(_validator(kind).iter_errors(obj))
    if error is not None:
        raise error


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    component = KINDS.get(kind, kind)
    schemas = load_schemas()
    if component not in schemas:
        known = ", ".join([*KINDS, *sorted(schemas)])
        raise KeyError(f"unknown OpenAI schema kind {kind!r} (known: {known})")
    # The components travel inside the root document, so the spec's own
    # "#/components/schemas/X" references resolve without a custom resolver.
    root = {"$ref": f"#/components/schemas/{component}", "components": {"schemas": schemas}}
    return jsonschema.Draft202012Validator(root)


@functools.cache
def load_schemas() -> Schemas:
    """The extracted components, spec gaps patched, translated to JSON Schema."""
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["components"]["schemas"]
    schemas = copy.deepcopy(raw)
    for patch in SPEC_GAPS:
        patch(schemas)
    return {name: to_json_schema(schema) for name, schema in schemas.items()}


def to_json_schema(schema: Any) -> Any:
    """Translate one OpenAPI 3.0 schema object (and its subschemas) to JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "nullable":
            continue
        if key == "properties":
            # A properties map is keyed by field names, which may be any word,
            # including "nullable": only its values are schemas.
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif isinstance(value, list) and key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    return _allow_null(out) if schema.get("nullable") is True else out


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    if "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    widened = {**schema, "type": [*types, "null"]}
    if "enum" in schema:
        # enum is checked on its own, so null must be listed there too.
        widened["enum"] = [*schema["enum"], None]
    return widened
