#!/bin/sh
# stamp.sh FILE: the first command of a pickup build writes the time (ns since the epoch)
date +%s%N > "$1"
