"""Pseudonyms restored in streams of every client shape, also when a placeholder is split over
several events, with held-back text flushed when its channel ends."""

from __future__ import annotations

import orjson
import pytest

from onyproxy.sse import Event
from plugins.redaction.stream import StreamRestorer
from plugins.redaction.vault import Vault

EMAIL = "ayse@ornek.com.tr"
PHONE = "0532 123 45 67"


def restorer() -> StreamRestorer:
    vault = Vault()
    assert vault.placeholder("EMAIL", EMAIL) == "[EMAIL_1]"
    assert vault.placeholder("PHONE", PHONE) == "[PHONE_1]"
    return StreamRestorer(vault)


def run(shape: str, events: list[Event]) -> list[bytes]:
    r = restorer()
    out = []
    for event in events:
        r.restore_event(shape, event)
        out.append(event.encode())
    return out


def parsed(wire: list[bytes]) -> list[tuple[str | None, dict]]:
    """(event name, data) of every SSE event in the wire bytes, in order."""
    events = []
    for block in b"".join(wire).decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.splitlines():
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        text = "\n".join(data)
        events.append((name, orjson.loads(text) if text != "[DONE]" else {}))
    return events


# --- the holdback itself ---------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_any_split_of_the_text_gives_back_the_original(size):
    r = restorer()
    text = "Yazdi: [EMAIL_1], ara [PHONE_1]. Liste [1] ve [EMAIL_9] ve [link"
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    out = "".join(r.feed("c", piece) for piece in pieces) + r.flush("c")
    assert out == f"Yazdi: {EMAIL}, ara {PHONE}. Liste [1] ve [EMAIL_9] ve [link"


def test_only_a_possible_placeholder_is_held_and_only_briefly():
    r = restorer()
    assert r.feed("c", "see [1] and [") == "see [1] and "
    assert r.feed("c", "x] ok") == "[x] ok"
    assert r.feed("c", "mail [EMA") == "mail "
    assert r.held == {"c": "[EMA"}
    assert r.feed("c", "IL_1]!") == f"{EMAIL}!"
    assert r.feed("c", "[PHONE_12345") == "[PHONE_12345"  # longer than any issued placeholder


# --- OpenAI chat chunks ----------------------------------------------------------------------

def chat_chunk(content: str | None = None, finish: str | None = None, **delta) -> Event:
    if content is not None:
        delta["content"] = content
    obj = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return Event(orjson.dumps(obj).decode(), raw=b"data: " + orjson.dumps(obj) + b"\n\n")


def test_openai_chunks_split_inside_a_placeholder_are_restored():
    events = [chat_chunk("Mail: [EMA"), chat_chunk("IL_1"), chat_chunk("] sent"),
              chat_chunk(finish="stop"), Event("[DONE]", raw=b"data: [DONE]\n\n")]
    out = parsed(run("openai", events))
    text = "".join(d["choices"][0]["delta"].get("content", "") for _, d in out[:-1])
    assert text == f"Mail: {EMAIL} sent"
    assert out[0][1]["choices"][0]["delta"]["content"] == "Mail: "


def test_openai_text_held_at_the_end_goes_out_with_the_finish_chunk():
    out = parsed(run("openai", [chat_chunk("ends with [PHO"), chat_chunk(finish="stop")]))
    assert out[1][1]["choices"][0]["delta"] == {"content": "[PHO"}
    assert out[1][1]["choices"][0]["finish_reason"] == "stop"


def test_openai_tool_call_arguments_are_restored_as_json():
    def call(arguments: str, finish: str | None = None) -> Event:
        return chat_chunk(finish=finish, tool_calls=[
            {"index": 0, "function": {"arguments": arguments}}])
    out = parsed(run("openai", [call('{"to": "[EMAIL'), call('_1]", "n": "[PH'),
                                call("", finish="tool_calls")]))
    arguments = "".join(d["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        for _, d in out)
    assert arguments == f'{{"to": "{EMAIL}", "n": "[PH'


def test_events_without_brackets_keep_their_bytes():
    event = chat_chunk("nothing to see")
    raw = event.raw
    run("openai", [event])
    assert event.raw is raw


# --- Anthropic events ------------------------------------------------------------------------

def anthropic(obj: dict) -> Event:
    return Event(orjson.dumps(obj).decode(), obj["type"])


def text_delta(text: str, index: int = 0) -> Event:
    return anthropic({"type": "content_block_delta", "index": index,
                      "delta": {"type": "text_delta", "text": text}})


def test_anthropic_text_deltas_are_restored_and_a_held_tail_precedes_block_stop():
    events = [anthropic({"type": "message_start", "message": {"id": "m", "content": []}}),
              anthropic({"type": "content_block_start", "index": 0,
                         "content_block": {"type": "text", "text": ""}}),
              text_delta("Sent to [EM"), text_delta("AIL_1] and [PHONE"),
              anthropic({"type": "content_block_stop", "index": 0}),
              anthropic({"type": "message_stop"})]
    out = parsed(run("anthropic", events))
    names = [name for name, _ in out]
    assert names == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_stop"]
    text = "".join(d["delta"]["text"] for name, d in out if name == "content_block_delta")
    assert text == f"Sent to {EMAIL} and [PHONE"
    assert out[4][1] == {"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": "[PHONE"}}


def test_anthropic_tool_input_json_is_restored_and_thinking_is_not():
    events = [anthropic({"type": "content_block_delta", "index": 0,
                         "delta": {"type": "thinking_delta", "thinking": "[EMAIL_1]"}}),
              anthropic({"type": "content_block_delta", "index": 1,
                         "delta": {"type": "input_json_delta", "partial_json": '{"to":"[EMAI'}}),
              anthropic({"type": "content_block_delta", "index": 1,
                         "delta": {"type": "input_json_delta", "partial_json": 'L_1]"}'}}),
              anthropic({"type": "content_block_stop", "index": 1})]
    out = parsed(run("anthropic", events))
    assert out[0][1]["delta"]["thinking"] == "[EMAIL_1]"
    assert out[1][1]["delta"]["partial_json"] + out[2][1]["delta"]["partial_json"] == \
        f'{{"to":"{EMAIL}"}}'


# --- Gemini chunks ---------------------------------------------------------------------------

def gemini(*texts: str, finish: str | None = None) -> Event:
    candidate = {"content": {"role": "model", "parts": [{"text": t} for t in texts]},
                 "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return Event(orjson.dumps({"candidates": [candidate]}).decode())


def test_gemini_parts_are_restored_across_chunks_and_flushed_on_finish():
    out = parsed(run("gemini", [gemini("Mail [EMAIL"), gemini("_1] ok [PH"),
                                gemini(finish="STOP")]))
    texts = ["".join(p["text"] for p in d["candidates"][0]["content"]["parts"]) for _, d in out]
    assert texts == ["Mail ", f"{EMAIL} ok ", "[PH"]


def test_gemini_function_call_args_are_restored():
    obj = {"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "send", "args": {"to": "[EMAIL_1]"}}}]}, "index": 0}]}
    out = parsed(run("gemini", [Event(orjson.dumps(obj).decode())]))
    assert out[0][1]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == {
        "to": EMAIL}


# --- OpenAI Responses events -----------------------------------------------------------------

def responses(kind: str, seq: int, **fields) -> Event:
    obj = {"type": kind, "sequence_number": seq, **fields}
    return Event(orjson.dumps(obj).decode(), kind)


def test_responses_deltas_done_events_and_the_final_response_are_restored():
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = [responses("response.output_text.delta", 1, delta="To [EMA", **ids),
              responses("response.output_text.delta", 2, delta="IL_1], then [PHO", **ids),
              responses("response.output_text.done", 3, text="To [EMAIL_1], then [PHO", **ids),
              responses("response.completed", 4, response={"output": [{"content": [
                  {"type": "output_text", "text": "To [EMAIL_1], then [PHO"}]}]})]
    out = parsed(run("openai-responses", events))
    deltas = [d["delta"] for name, d in out if name == "response.output_text.delta"]
    assert "".join(deltas) == f"To {EMAIL}, then [PHO"
    assert [name for name, _ in out][-2:] == ["response.output_text.done", "response.completed"]
    assert out[-2][1]["text"] == f"To {EMAIL}, then [PHO"
    assert out[-1][1]["response"]["output"][0]["content"][0]["text"] == f"To {EMAIL}, then [PHO"
