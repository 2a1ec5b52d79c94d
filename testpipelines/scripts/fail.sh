#!/bin/sh
# fail.sh MESSAGE: print some output, then fail with MESSAGE on stderr and exit 1.
echo "running the test suite"
echo "FAILED: ${1:-something went wrong}" >&2
exit 1
