#!/usr/bin/env bash
# Installs the Debian packages sssn-host needs to build, test and run.
# Idempotent: quiet and fast when everything is already present. Also the browser tests'
# npm package (playwright-core, from package-lock.json), which drives Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential pkg-config
  liblua5.4-dev lua5.4 libev-dev lua-busted libreadline-dev
  libhttp-parser-dev libcurl4-openssl-dev curl tmux procps iproute2
  libssl-dev openssl clang python3
  etcd-server etcd-client
  libsqlite3-dev sqlite3
  chromium
)
# Node.js and npm run the browser tests (spec/browser); a machine that has them from
# elsewhere (a newer Node.js) keeps them. playwright-core wants Node.js 20 or later.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, exactly as package-lock.json pins them; again when the lock is newer than
# node_modules (touched after each install, as npm ci may leave its old time).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "deps: npm ci (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules
fi
