#!/bin/sh
# timed.sh CMD [ARG...]: bass's build entry wrapper. Runs CMD and writes "START END"
# (ns since the epoch: just before CMD starts, just after it exits) to
# $BENCH_STAMPS/entry-$BASS_PIPELINE-$BASS_BUILD_NUMBER; exits with CMD's code.
start=$(date +%s%N)
"$@"
code=$?
end=$(date +%s%N)
echo "$start $end" > "$BENCH_STAMPS/entry-$BASS_PIPELINE-$BASS_BUILD_NUMBER"
exit $code
