#!/bin/sh
# The subproject's own build: runs with subproject/ as its working directory.
echo "building $(basename "$(pwd)")"
ls
