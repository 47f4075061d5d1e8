"""`time-of-day`: windows of local wall-clock time to children (docs/time-of-day.md)."""

from .router import TimeOfDay

__all__ = ["TimeOfDay"]
