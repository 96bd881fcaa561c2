#!/bin/bash
# Starts a grandchild of the command runner that would outlive its parent,
# records the grandchild's PID in the file named by $1, and waits: cancel
# must kill the whole process tree, not just this shell.
sleep 1000 &
echo $! > "$1.tmp" && mv "$1.tmp" "$1"
wait
