"""Registers the Gemini shape with the translation hub, in both directions.

``openai`` → ``gemini``: an OpenAI client served by a Gemini provider (chat and embeddings).
``gemini`` → ``openai``: a Gemini client served by an OpenAI-shaped provider, and through the
hub by any other (the mock, Anthropic ...).
"""

from __future__ import annotations

from onyproxy import translate
from onyproxy.translate import gemini_client_request as client_request
from onyproxy.translate import gemini_client_response as client_response
from onyproxy.translate import gemini_embeddings as embeddings
from onyproxy.translate import gemini_provider_request as provider_request
from onyproxy.translate import gemini_provider_response as provider_response
from onyproxy.translate.gemini_client_stream import OpenAIToGeminiStream
from onyproxy.translate.gemini_provider_stream import GeminiToOpenAIStream

translate.register("openai", "gemini", "chat", request=provider_request.to_gemini,
                   response=provider_response.to_openai, stream=GeminiToOpenAIStream)
translate.register("gemini", "openai", "chat", request=client_request.to_openai,
                   response=client_response.to_gemini, stream=OpenAIToGeminiStream)
translate.register("openai", "gemini", "embeddings", request=embeddings.openai_to_gemini,
                   response=embeddings.gemini_to_openai_answer)
translate.register("gemini", "openai", "embeddings", request=embeddings.gemini_to_openai,
                   response=embeddings.openai_to_gemini_answer)
