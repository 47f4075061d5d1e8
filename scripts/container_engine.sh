#!/usr/bin/env bash
# container_engine.sh: a working podman for the image tests and CI, on a Debian/Ubuntu host
# with no Docker engine and no registry (the tested recipe: docs/deploy-image.md).
#   1. installs podman, runc and mmdebstrap when podman is missing (apt-get; needs root),
#   2. writes a containers.conf: runc (crun 1.8 refuses hybrid cgroup hosts), ulimits capped
#      at this shell's hard limits (podman's default nofile=1048576 fails without
#      CAP_SYS_RESOURCE), cgroupfs and file events (no systemd),
#   3. bootstraps the Debian base image $BASE (python3 + venv, the host's extra CAs) with
#      mmdebstrap and imports it, once: skipped when it exists (REBUILD_BASE=1 redoes it).
# Prints the containers.conf path on stdout (everything else goes to stderr); sourced, it
# exports CONTAINERS_CONF instead:
#   export CONTAINERS_CONF=$(bash scripts/container_engine.sh)    or    . scripts/container_engine.sh
# Env: ENGINE_DIR (default /var/tmp/seldon-routers-engine), BASE (localhost/base-python:bookworm),
#      NO_INSTALL=1 (fail rather than apt-get install), REBUILD_BASE=1.
_engine_main() {
  set -euo pipefail
  local dir=${ENGINE_DIR:-/var/tmp/seldon-routers-engine}
  local base=${BASE:-localhost/base-python:bookworm}
  mkdir -p "$dir"
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
     || { ! command -v mmdebstrap >/dev/null && [ "${REBUILD_BASE:-0}" = 1 ]; }; then
    _engine_install "$dir"
  fi
  _engine_conf "$dir/containers.conf"
  export CONTAINERS_CONF=$dir/containers.conf  # podman and buildah read only this file
  podman info --format 'podman {{.Version.Version}}: runtime={{.Host.OCIRuntime.Name}} cgroups={{.Host.CgroupsVersion}}/{{.Host.CgroupManager}}' >&2 \
    || { echo "container_engine: podman does not work with $CONTAINERS_CONF" >&2; return 1; }
  if [ "${REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$base"; then
    command -v mmdebstrap >/dev/null || _engine_install "$dir"
    _engine_base "$dir" "$base"
  fi
  echo "$CONTAINERS_CONF"
}

_engine_install() {
  if [ "${NO_INSTALL:-0}" = 1 ]; then
    echo "container_engine: podman, runc or mmdebstrap missing and NO_INSTALL=1" >&2; return 1
  fi
  command -v apt-get >/dev/null || { echo "container_engine: no apt-get: install podman and runc yourself" >&2; return 1; }
  echo "container_engine: installing podman runc mmdebstrap (log: $1/apt.log)" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      podman runc mmdebstrap netavark aardvark-dns iptables ca-certificates; } >"$1/apt.log" 2>&1 \
    || { tail -20 "$1/apt.log" >&2; return 1; }
}

_engine_conf() {
  local nofile nproc
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  if [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; then nofile=1048576; fi
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  cat >"$1.tmp" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  mv "$1.tmp" "$1"
}

_engine_mirror() {  # _engine_mirror SUITE: the first URI of a deb822 stanza listing SUITE
  awk -v suite="$1" 'BEGIN { RS = ""; FS = "\n" }
    { uri = ""; ok = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, u, /[ \t]+/); uri = u[2] }
        if ($i ~ /^Suites:/) { n = split($i, w, /[ \t]+/); for (j = 2; j <= n; j++) if (w[j] == suite) ok = 1 }
      }
      if (ok && uri != "") { print uri; exit } }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
}

_engine_base() {
  local dir=$1 base=$2 mirror sec
  # The Debian mirror apt already uses (no registry is reachable; the mirror is): only from a
  # stanza whose Suites name bookworm (an Ubuntu or third-party source would not bootstrap it).
  mirror=$(_engine_mirror bookworm); sec=$(_engine_mirror bookworm-security)
  mirror=${mirror:-http://deb.debian.org/debian}; sec=${sec:-http://deb.debian.org/debian-security}
  echo "container_engine: bootstrapping $base from $mirror (log: $dir/mmdebstrap.log)" >&2
  # minbase, merged /usr, no docs/man/locales; the host's extra CAs, so TLS through an egress
  # proxy verifies in `RUN pip install`. The hook's "$1" is expanded by mmdebstrap, not here.
  # shellcheck disable=SC2016
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='for f in /usr/local/share/ca-certificates/*.crt; do [ -e "$f" ] && cp "$f" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates --fresh >/dev/null' \
    bookworm "$dir/rootfs.tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $sec bookworm-security main" \
    >"$dir/mmdebstrap.log" 2>&1 || { tail -20 "$dir/mmdebstrap.log" >&2; return 1; }
  podman import -q --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' "$dir/rootfs.tar" "$base" >/dev/null
  rm -f "$dir/rootfs.tar"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  _engine_main
else  # sourced: export CONTAINERS_CONF into the caller, keep its shell options
  _engine_conf_path=$( (_engine_main) ) || { unset _engine_conf_path; return 1; }
  export CONTAINERS_CONF=$_engine_conf_path; unset _engine_conf_path
fi
