"""Registers the OpenAI Responses shape with the hub: a Responses client, a Chat provider.

Providers that speak ``openai-responses`` themselves (OpenAI) get the client's request as is;
every other provider is reached through Chat Completions (``openai``), the hub shape:
``openai-responses`` → ``openai`` → the provider's own shape, and back.
"""

from __future__ import annotations

from onyproxy import translate
from onyproxy.translate.responses_request import to_chat_request
from onyproxy.translate.responses_response import to_responses_response
from onyproxy.translate.responses_stream import ResponsesStream

translate.register("openai-responses", "openai", "chat", request=to_chat_request,
                   response=to_responses_response, stream=ResponsesStream)
