"""`classifier`: model as a router (docs/classifier.md). torch and onnxruntime load only
when a model of theirs does (backends.py)."""

from .router import ClassifierRouter

__all__ = ["ClassifierRouter"]
