# main.sh: the program.  Usage: app [NAME]

case "${1:-}" in
  --version) echo "example-app ${APP_VERSION:-unknown}" ;;
  *) greet "${1:-world}" ;;
esac
