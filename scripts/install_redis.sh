#!/usr/bin/env bash
# Installs redis-server (the state-store tests start their own instances on free ports).
set -euo pipefail
if command -v redis-server >/dev/null; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
elif command -v brew >/dev/null; then
  brew install redis
else
  echo "install redis-server with your package manager (https://redis.io/docs/install/)" >&2; exit 1
fi
