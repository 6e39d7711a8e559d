"""A first end-to-end check of the core against the in-process mock provider."""

from aiohttp import ClientSession


async def test_mock_chat_round_trip(gateway):
    server = await gateway()
    async with ClientSession() as http:
        resp = await http.post(server.make_url("/v1/chat/completions"), json={
            "model": "mock-small", "messages": [{"role": "user", "content": "hi there"}]})
        body = await resp.json()
    assert resp.status == 200
    assert body["choices"][0]["message"]["content"] == "echo: hi there"
    assert resp.headers["x-request-id"].startswith("req_")
