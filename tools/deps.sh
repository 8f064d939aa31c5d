#!/bin/sh
# Installs the Debian packages the build and the specs need, when one is
# missing and we are allowed to (root with apt-get). Otherwise says what to
# install and carries on: `make` itself reports what is really missing.
set -u
PACKAGES="lua5.4 liblua5.4-dev lua-busted lua-socket libunwind-dev pkg-config"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq $missing >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq $missing >/dev/null; } ||
    { echo "could not install:$missing" >&2; exit 1; }
else
  echo "missing packages:$missing (install them with: sudo apt-get install$missing)" >&2
fi
