#!/bin/sh
# work.sh NAME SECONDS: pretend to work for a moment, printing progress.
name=${1:-work}
seconds=${2:-0.1}
echo "$name: started"
sleep "$seconds"
echo "$name: finished"
