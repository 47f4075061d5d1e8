"""`canary`: a progressive rollout from a stable child to a candidate, Flagger style."""

from .router import Canary

__all__ = ["Canary"]
