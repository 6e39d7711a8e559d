"""Bad input on the admin API: absurd listing bounds, deep JSON, a wrong Content-Encoding."""

from __future__ import annotations

import pytest
import test_admin_api as admin_api
from test_admin_api import new_account

# The admin API's fixtures, on both stores (SQLite and the session's SecantusDB).
api, backend, mongo_url = admin_api.api, admin_api.backend, admin_api.mongo_url


@pytest.mark.parametrize("query, param", [
    ("offset=99999999999999999999", "offset"), ("offset=-1", "offset"),
    ("limit=99999999999999999999", "limit"), ("limit=0", "limit"), ("offset=1e3", "offset"),
])
async def test_listing_with_an_absurd_offset_or_limit_is_400(api, query, param):
    await new_account(api)
    status, body, _ = await api.call("GET", f"/admin/accounts?{query}")
    assert (status, body["error"]["param"]) == (400, param)


async def test_a_body_nested_deeper_than_64_levels_is_400(api):
    raw = b'{"email": "b@example.com", "name": "B", "billing": ' + b"[" * 300 + b"]" * 300 + b"}"
    async with api.session.post(api.url + "/admin/accounts", data=raw,
                                headers={**api.auth, "content-type": "application/json"}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "json_too_deep"


@pytest.mark.parametrize(("encoding", "code"), [("gzip", "bad_content_encoding"),
                                                ("compress", "unsupported_content_encoding")])
async def test_a_wrong_content_encoding_is_400(api, encoding, code):
    raw = b'{"email": "c@example.com", "name": "C"}'  # plain JSON, whatever the header says
    async with api.session.post(api.url + "/admin/accounts", data=raw,
                                headers={**api.auth, "content-type": "application/json",
                                         "content-encoding": encoding}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == code
