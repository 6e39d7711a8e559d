"""Registers the Anthropic Messages shape with the OpenAI hub, in both directions.

- OpenAI client → Anthropic provider: :mod:`anthropic_request`, :mod:`anthropic_response`,
  :mod:`anthropic_stream`.
- Anthropic client → OpenAI-shaped provider (OpenAI, mock, and through the hub any other):
  :mod:`anthropic_client_request`, :mod:`anthropic_client_response`,
  :mod:`anthropic_client_stream`.
"""

from __future__ import annotations

from onyproxy.translate import register
from onyproxy.translate.anthropic_client_request import to_openai_request
from onyproxy.translate.anthropic_client_response import to_anthropic_response
from onyproxy.translate.anthropic_client_stream import OpenAIToAnthropicStream
from onyproxy.translate.anthropic_request import to_anthropic_request
from onyproxy.translate.anthropic_response import to_openai_response
from onyproxy.translate.anthropic_stream import AnthropicToOpenAIStream

register("openai", "anthropic", "chat", request=to_anthropic_request,
         response=to_openai_response, stream=AnthropicToOpenAIStream)
register("anthropic", "openai", "chat", request=to_openai_request,
         response=to_anthropic_response, stream=OpenAIToAnthropicStream)
