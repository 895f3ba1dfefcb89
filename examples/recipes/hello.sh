#!/bin/sh
# hello @HELLO_VERSION@: announce the command, then replace this process by it.
if [ $# -eq 0 ]; then
  echo "usage: hello COMMAND [ARG]..." >&2
  exit 2
fi
echo "[hello @HELLO_VERSION@] starting: $*"
exec "$@"
