"""Plugin ``residency``: requests go only to providers in the regions the caller may use."""

from plugins.residency.plugin import ResidencyPlugin as Plugin

__all__ = ["Plugin"]
