"""Per-user rate limits (placeholder until the limits work lands: no limits)."""

from __future__ import annotations

from ...errors import ConfigError


class RateLimits:
    is_async = False

    @classmethod
    def from_params(cls, rpm, tpm, limits, limits_file, clock):
        if rpm is not None or tpm is not None or limits is not None or limits_file is not None:
            raise ConfigError("rpm: rate limits are not available yet")
        return cls()

    def admit(self, call):
        return None

    async def admit_async(self, call):
        return None

    def settle(self, key, tokens):
        pass

    async def settle_async(self, key, tokens):
        pass

    def state(self):
        return {}
