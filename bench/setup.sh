#!/usr/bin/env bash
# Installs the load generators the serving benchmark needs (Debian packages):
#   wrk            REST load (HTTP/1.1, keep-alive)
#   nghttp2-client h2load, gRPC load (HTTP/2)
# Run as root (or with sudo available). Idempotent: does nothing when both exist.
set -euo pipefail
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
if [ ${#need[@]} -eq 0 ]; then
  echo "wrk and h2load already installed"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${need[@]}"; then
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${need[@]}"
fi
wrk --version 2>&1 | head -1 || true
h2load --version 2>&1 | head -1
