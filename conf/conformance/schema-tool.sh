#!/bin/sh
# The arguments arrive on stdin as one JSON object.
printf 'JSON Schema 2020-12 tool called with: %s' "$(cat)"
