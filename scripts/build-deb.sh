#!/bin/sh
# Builds mcpd's Debian packages (debian/) into OUTDIR, default build-deb/.
#   scripts/build-deb.sh [OUTDIR]
# dpkg-buildpackage works in a copy of the source (OUTDIR/src): it cleans,
# configures and builds there with PREFIX=/usr, so the build tree, its
# config.mk and build/ are left as they are. The copy is what git would
# commit (tracked files and new ones not ignored), or, outside a checkout,
# the tree without its build products.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$out/src

rm -rf "$src"
mkdir -p "$src"
cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude='./build' --exclude='./build-*' --exclude=./config.mk \
		--exclude=./config.status --exclude=./config.log --exclude=./configure \
		--exclude=./autom4te.cache --exclude=./aclocal.m4 --exclude=node_modules \
		-cf - . | tar -xf - -C "$src"
fi

rm -f "$out"/*.deb "$out"/*.buildinfo "$out"/*.changes
cd "$src"
# -b: binary packages only; -us -uc: nothing signed.
DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b
# dpkg-buildpackage writes its products beside the source directory.
ls "$out"/*.deb
