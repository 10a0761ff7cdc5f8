#!/bin/sh
# Installs the Debian packages mcpd needs to build and test, if missing.
# Run by make before configure; as root it installs, otherwise it lists.
#   scripts/install-deps.sh          build dependencies
#   scripts/install-deps.sh test     build and test dependencies
set -eu

build_pkgs="gcc make autoconf automake pkgconf libevent-dev libyaml-dev libcjson-dev libssl-dev
  libhiredis-dev libcurl4-openssl-dev check liblmdb-dev"
test_pkgs="python3 openssl curl man-db procps"

pkgs=$build_pkgs
[ "${1:-}" = test ] && pkgs="$build_pkgs $test_pkgs"

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: not a Debian system; please install:$missing" >&2
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run as root, or: sudo apt-get install$missing" >&2
	exit 0
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be empty or stale.
if ! apt-get install -y -q --no-install-recommends $missing; then
	apt-get update -q
	apt-get install -y -q --no-install-recommends $missing
fi
