"""Bandit routers: they learn from feedback rewards which child serves best."""
