#!/bin/sh
# Prints MCP content blocks (output: content) for the conformance tools.
# $1 names the fixture; media comes from the files beside this script.
set -eu
here=$(dirname "$0")
png=$(base64 -w0 "$here/pixel.png")
wav=$(base64 -w0 "$here/tone.wav")
case "$1" in
image)
	printf '[{"type":"image","data":"%s","mimeType":"image/png"}]\n' "$png" ;;
audio)
	printf '[{"type":"audio","data":"%s","mimeType":"audio/wav"}]\n' "$wav" ;;
embedded)
	printf '[{"type":"resource","resource":{"uri":"test://embedded-resource","mimeType":"text/plain","text":"This is an embedded resource content."}}]\n' ;;
mixed)
	printf '[{"type":"text","text":"Multiple content types test:"},{"type":"image","data":"%s","mimeType":"image/png"},{"type":"resource","resource":{"uri":"test://mixed-content-resource","mimeType":"application/json","text":"{\\"test\\":\\"data\\",\\"value\\":123}"}}]\n' "$png" ;;
*)
	echo "unknown fixture $1" >&2; exit 1 ;;
esac
