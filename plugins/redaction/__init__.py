"""Plugin ``redaction``: secrets masked in logs; PII masked, pseudonymised or blocked upstream."""

from plugins.redaction.plugin import RedactionPlugin as Plugin

__all__ = ["Plugin"]
