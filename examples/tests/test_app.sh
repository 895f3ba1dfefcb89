#!/bin/sh
# Tests of the built app, run by the test stage:  test_app.sh PATH_TO_APP
set -eu
app=$1
failures=0

check() {  # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    echo "ok - $1"
  else
    echo "not ok - $1: expected '$2', got '$3'"
    failures=$((failures + 1))
  fi
}

version=$("$app" --version)
version=${version#example-app }
check "was built with a version" "yes" "$([ "$version" != unknown ] && echo yes)"
check "greets the world by default" \
  "Hello, world! This is example-app $version." "$("$app")"
check "greets by name" "Hello, CI! This is example-app $version." "$("$app" CI)"
exit "$failures"
