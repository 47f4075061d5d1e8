"""A discrete-event simulator of vLLM-like pods that drives the LLM routers (bench/llm_routing.py)."""
