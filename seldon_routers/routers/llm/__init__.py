"""LLM-serving routers: children are model-server pods (see docs/llm/index.md)."""
