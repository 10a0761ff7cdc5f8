#!/bin/sh
# Print the text of a PDF (an example script a skill ships).
exec pdftotext -layout "$1" -
