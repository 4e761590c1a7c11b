#!/usr/bin/env bash
# Installs the Debian packages sssn-host needs to build, test and run.
# Idempotent: quiet and fast when everything is already present.
set -euo pipefail

packages=(
  build-essential pkg-config
  liblua5.4-dev lua5.4 libev-dev lua-busted libreadline-dev
  libhttp-parser-dev libcurl4-openssl-dev curl tmux procps iproute2
  libssl-dev openssl clang python3
  etcd-server etcd-client
  libsqlite3-dev sqlite3
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
