#!/bin/sh
# Installs the Debian packages mcpd needs to build and test, if missing.
# Run by make before configure; as root it installs, otherwise it lists.
#   scripts/install-deps.sh          build dependencies
#   scripts/install-deps.sh test     build and test dependencies
#   scripts/install-deps.sh deb      build dependencies and Debian's packaging
#                                    tools (make deb; debian/control's
#                                    Build-Depends are build_pkgs)
set -eu

build_pkgs="gcc make autoconf automake pkgconf libevent-dev libyaml-dev libcjson-dev libssl-dev
  libhiredis-dev libpq-dev libcurl4-openssl-dev check liblmdb-dev"
test_pkgs="python3 openssl curl man-db procps redis-server postgresql"
# make check-fuzz: clang and its libFuzzer runtime (libclang-rt-dev pulls in
# the one of the default clang, libclang-rt-14-dev on Debian 12).
test_pkgs="$test_pkgs clang libclang-rt-dev"
build_pkgs="$build_pkgs libnats-dev"
test_pkgs="$test_pkgs nats-server"

# make deb: dpkg-buildpackage, the dh sequencer (compat 13) and lintian;
# tests/integration/test_deb.py builds and checks the packages in make check.
deb_pkgs="dpkg-dev debhelper lintian"
test_pkgs="$test_pkgs $deb_pkgs"

pkgs=$build_pkgs
[ "${1:-}" = test ] && pkgs="$build_pkgs $test_pkgs"
[ "${1:-}" = deb ] && pkgs="$build_pkgs $deb_pkgs"

# The Node.js test peers (conformance suite, SDK client, Inspector CLI),
# pinned by tests/node/package-lock.json.
node_peers() {
	command -v npm >/dev/null 2>&1 || { echo "install-deps: npm is needed for the MCP test peers" >&2; return 1; }
	dir=$(dirname "$0")/../tests/node
	stamp=$dir/node_modules/.package-lock.json
	if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
		echo "install-deps: npm ci in tests/node"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
}

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	if [ "${1:-}" = test ]; then node_peers || exit 1; fi
	exit 0
fi

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
if [ "${1:-}" = test ]; then node_peers || exit 1; fi
exit 0
