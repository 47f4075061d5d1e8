"""What the redis store keeps in Redis: the keys of a unit's namespace and the two Lua
scripts that change them atomically (each runs whole inside Redis' single thread, so
concurrent replicas never read-modify-write)."""

from __future__ import annotations

import os

KEY_VERSION = 1

# KEYS[1]: the statistics hash; KEYS[2]: the prefix of the seen-ids keys. ARGV: per
# increment: id, ttl, number of fields, then field/amount pairs. Returns how many applied.
APPLY = """
local i, applied = 1, 0
while i <= #ARGV do
  local id, ttl, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  i = i + 3
  if redis.call('SET', KEYS[2] .. id, '1', 'NX', 'EX', ttl) then
    applied = applied + 1
    for j = i, i + 2 * n - 1, 2 do
      redis.call('HINCRBYFLOAT', KEYS[1], ARGV[j], ARGV[j + 1])
    end
  else
    redis.call('HINCRBY', KEYS[1], 'duplicates.0', 1)
  end
  i = i + 2 * n
end
return applied
"""


# KEYS[1]: meta, KEYS[2]: stats. ARGV: number of meta fields, then meta pairs, then stats
# pairs. Claims an empty namespace, adding the seed to any sums already there (increments
# applied since it was emptied); returns 0 if it holds state already.
SEED = """
local n = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
for i = 2 * n + 2, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""


def default_namespace(unit_id: str) -> str:
    """Seldon's identity of a unit: deployment, predictor, unit (as its executor sets them)."""
    return ":".join((os.environ.get("SELDON_DEPLOYMENT_ID", "default"), os.environ.get("PREDICTOR_ID", "default"),
                     unit_id))


def unit_keys(namespace: str) -> dict:
    """The keys of one unit: its statistics hash, its identity (meta) hash, and the prefix
    of its seen-feedback ids. One hash tag for all: they live in one Redis Cluster slot,
    which a script touching several keys needs."""
    prefix = f"seldon-router:{{{namespace}}}"
    return {"stats": f"{prefix}:stats", "meta": f"{prefix}:meta", "seen": f"{prefix}:seen:"}
