"""A stand-in for ``orjson`` built on the standard library, to measure what orjson buys.

``python -m bench.serve --no-orjson`` installs it as ``sys.modules["orjson"]`` before the
gateway is imported. It covers what the gateway uses: ``loads``, ``dumps`` (bytes, compact,
``default=``, ``option=`` ignored, and the types orjson encodes natively: datetime, date, time,
UUID, dataclasses, enums) and ``JSONDecodeError`` (with ``pos``).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from typing import Any

JSONDecodeError = json.JSONDecodeError
OPT_SORT_KEYS = OPT_INDENT_2 = OPT_NON_STR_KEYS = OPT_SERIALIZE_NUMPY = 0



def _native(value: Any) -> Any:
    """What orjson would write for the types it serialises without ``default``."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(type(value).__name__)


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_native)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(data, memoryview):
        data = bytes(data)
    return json.loads(data)


def dumps(obj: Any, default: Any = None, option: int | None = None) -> bytes:
    if default is None:
        return _encoder.encode(obj).encode()

    def either(value: Any) -> Any:
        try:
            return _native(value)
        except TypeError:
            return default(value)

    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=either).encode()
