# greet.sh: the library.  APP_VERSION is defined by the compiler (cc -D).

greet() {
  printf 'Hello, %s! This is example-app %s.\n' "${1:-world}" "${APP_VERSION:-unknown}"
}
