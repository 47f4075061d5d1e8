#!/usr/bin/env bash
# Creates (once) the virtual environment with Seldon Core 1.18.2, the real peer that the
# interoperability tests and the benchmark run against, and installs this project's core
# package into it. Prints the environment's path. Seldon pins numpy<2, protobuf<4 and
# Flask<3, so it cannot share the project's environment; its gunicorn needs pkg_resources.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SELDON_ENV:-$root/.cache/seldon-core-1.18.2}"
py="${SELDON_ENV_PYTHON:-python3.11}"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock" && flock 9  # one build or install at a time (pytest and bench/ share it)
if [ ! -f "$venv/.ready" ]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "seldon-core==1.18.2" "setuptools<70" >&2
  touch "$venv/.ready"
fi
# The core package (router classes, numpy only) must install without moving a pin.
# A stale build/ would carry deleted modules into the venv, so build from scratch.
rm -rf "$root/build"
"$venv/bin/pip" install -q --disable-pip-version-check "$root" >&2
echo "$venv"
