#!/bin/sh
# Prints a greeting on stdout and a note on stderr.
echo "hello, ${1:-world}"
echo "(a note on stderr)" >&2
