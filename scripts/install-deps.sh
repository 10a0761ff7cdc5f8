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
  libhiredis-dev libpq-dev libcurl4-openssl-dev libpcre2-dev zlib1g-dev check liblmdb-dev"
test_pkgs="python3 python3-pip openssl curl man-db procps redis-server postgresql prometheus"
# make check-fuzz: clang and its libFuzzer runtime (libclang-rt-dev pulls in
# the one of the default clang, libclang-rt-14-dev on Debian 12).
test_pkgs="$test_pkgs clang libclang-rt-dev"
# bench/instructions.sh (run by make check's bench/run.sh --quick): a
# call's cost counted in instructions by callgrind.
test_pkgs="$test_pkgs valgrind"
build_pkgs="$build_pkgs libnats-dev"
test_pkgs="$test_pkgs nats-server"
# The amqp transport: Qpid Proton's C library; its tests run RabbitMQ with
# its AMQP 1.0 plugin (shipped in rabbitmq-server) and a Python AMQP peer
# (python3-qpid-proton) that plays Service Bus's $cbs and faulty brokers.
build_pkgs="$build_pkgs libqpid-proton11-dev"
test_pkgs="$test_pkgs rabbitmq-server python3-qpid-proton"

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

# moto's server, the AWS that the dynamodb and sqs tests talk to, is a
# Python package (no Debian package has it): from PyPI where pip reaches
# it. Without it those tests are reported as skipped, never passed.
aws_peer() {
	python3 -c 'import moto.server, boto3' >/dev/null 2>&1 && return 0
	echo "install-deps: pip install 'moto[server]' (for the AWS tests)"
	python3 -m pip install --quiet 'moto[server]' 2>/dev/null ||
		python3 -m pip install --quiet --break-system-packages 'moto[server]' 2>/dev/null ||
		echo "install-deps: moto could not be installed: the dynamodb and sqs tests will be skipped" >&2
	return 0
}

# Google's emulators of Firestore and Pub/Sub, which the firestore and
# pubsub tests talk to: Java programs of the Cloud SDK, packaged in
# Google's Cloud SDK apt repository (not Debian's), with a Java runtime
# from Debian. Installed from that repository where apt has it (an
# operator adds it as Google documents: deb
# https://packages.cloud.google.com/apt cloud-sdk main, with its key);
# without them those tests are reported as skipped, never passed.
gcp_peer() {
	sdk=/usr/lib/google-cloud-sdk/platform
	if [ -f $sdk/cloud-firestore-emulator/cloud-firestore-emulator.jar ] &&
	    ls $sdk/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar >/dev/null 2>&1; then
		command -v java >/dev/null 2>&1 && return 0
		[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 &&
			apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null 2>&1 && return 0
		echo "install-deps: java is needed for the Google Cloud emulators (openjdk-17-jre-headless)" >&2
		return 0
	fi
	want="google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator openjdk-17-jre-headless"
	if [ "$(id -u)" = 0 ] && command -v apt-cache >/dev/null 2>&1 &&
	    apt-cache policy google-cloud-cli-pubsub-emulator 2>/dev/null | grep -q "Candidate: [0-9]"; then
		echo "install-deps: installing $want (for the Google Cloud tests)"
		apt-get install -y -q --no-install-recommends $want >/dev/null 2>&1 && return 0
	fi
	echo "install-deps: the Google Cloud emulators are not installed (google-cloud-cli-firestore-emulator," \
	    "google-cloud-cli-pubsub-emulator from Google's Cloud SDK apt repository): the firestore and pubsub" \
	    "tests will be skipped" >&2
	return 0
}

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	if [ "${1:-}" = test ]; then node_peers || exit 1; aws_peer; gcp_peer; fi
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
if [ "${1:-}" = test ]; then node_peers || exit 1; aws_peer; gcp_peer; fi
exit 0
