#!/usr/bin/env bash
# Installs the LLM routers that bench/gateway_peers.py compares the gateway with, each in its
# own virtualenv under /work/peers/<name> (their pins conflict with ours). Idempotent.
#   bash bench/setup_peers.sh            # vllm-router and sglang-router (~11 s each)
#   bash bench/setup_peers.sh litellm    # also litellm[proxy] (~44 s, 754 MB)
set -euo pipefail
root=${PEERS_DIR:-/work/peers}
declare -A spec=([vllm-router]="vllm-router==0.1.17" [sglang-router]="sglang-router==0.3.2")
names=(vllm-router sglang-router)
if [ "${1:-}" = litellm ]; then spec[litellm]="litellm[proxy]"; names+=(litellm); fi
for name in "${names[@]}"; do
  venv=$root/$name
  if [ -x "$venv/bin/python" ] && "$venv/bin/pip" show -q "${spec[$name]%%[=[]*}" >/dev/null 2>&1; then
    echo "$name already installed in $venv"
    continue
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${spec[$name]}"
  echo "$name installed in $venv"
done
