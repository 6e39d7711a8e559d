"""A stand-in for ``orjson`` built on the standard library, to measure what orjson buys.

``python -m bench.serve --no-orjson`` installs it as ``sys.modules["orjson"]`` before the
gateway is imported. It covers what the gateway uses: ``loads``, ``dumps`` (bytes, compact,
``default=``, ``option=`` ignored) and ``JSONDecodeError`` (with ``pos``).
"""

from __future__ import annotations

import json
from typing import Any

JSONDecodeError = json.JSONDecodeError
OPT_SORT_KEYS = OPT_INDENT_2 = OPT_NON_STR_KEYS = OPT_SERIALIZE_NUMPY = 0

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(data, memoryview):
        data = bytes(data)
    return json.loads(data)


def dumps(obj: Any, default: Any = None, option: int | None = None) -> bytes:
    if default is None:
        return _encoder.encode(obj).encode()
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False,
                      default=default).encode()
