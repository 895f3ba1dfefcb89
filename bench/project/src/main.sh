# The application (the build stage puts a shebang and APP_VERSION in front):
# prints its version, or checks itself with --self-test.
if [ "$1" = "--self-test" ]; then
    [ -n "$APP_VERSION" ] && echo "self-test ok" && exit 0
    echo "self-test failed: no version" >&2
    exit 1
fi
echo "bench app $APP_VERSION"
