"""The `rules` router: ordered match rules (headers, query, path, tags, JSON fields)."""

from .router import RuleRouter

__all__ = ["RuleRouter"]
