#!/bin/bash
# Copies stdin (a regular file: the unit's stdin) to stdout in pieces of
# $1 bytes, sleeping $2 seconds after each, so that tests can act while
# results are streaming. The output is byte-identical to the input.
set -eu
piece=${1:-65536}
pause=${2:-0.25}
size=$(stat -L -c %s /dev/stdin)
pieces=$(( (size + piece - 1) / piece ))
for (( i = 0; i < pieces; i++ )); do
  dd bs="$piece" count=1 iflag=fullblock status=none
  sleep "$pause"
done
