# A typical multi-stage build: a slow toolchain stage, a stage for the
# third-party dependencies, the build, its tests and a slim runtime image.
# No `# syntax=` line: BuildKit would have to pull the frontend image, and the
# example must build offline.  The sleeps stand in for real work.

# A global ARG is visible in every FROM line below.
ARG BASE_IMAGE=cilocal/busybox:latest

# The big, slow stage: stands in for installing a compiler (a few MB of "libs").
# It changes rarely, so it is the stage whose cache matters most.
FROM ${BASE_IMAGE} AS toolchain
COPY docker/toolchain/cc /opt/toolchain/bin/cc
RUN sleep 2 \
 && mkdir -p /opt/toolchain/lib /opt/toolchain/share \
 && head -c 3145728 /dev/urandom > /opt/toolchain/lib/libcc1.a \
 && head -c 1048576 /dev/urandom > /opt/toolchain/lib/libstd.a \
 && echo "fake-cc 12.2" > /opt/toolchain/share/VERSION
ENV PATH=/opt/toolchain/bin:$PATH

# An instance of a recipe: the image's ONBUILD triggers run here and install
# /usr/local/bin/hello, which the runtime stage copies out.
FROM cilocal/recipe:hello AS hello

# Dependencies change less often than the sources, so they get their own stage,
# keyed on the dependency list only.
FROM toolchain AS deps
COPY requirements.txt /src/requirements.txt
RUN sleep 2 \
 && mkdir -p /opt/deps \
 && grep -v '^#' /src/requirements.txt | while IFS='=' read -r name _ version; do \
      [ -n "$name" ] || continue; \
      mkdir -p "/opt/deps/$name" && echo "$version" > "/opt/deps/$name/VERSION"; \
    done \
 && ls /opt/deps

# Any change under src/ reruns this stage, test and the runtime stage only.
FROM deps AS build
ARG APP_VERSION=0.0.0
COPY src/ /src/app/
RUN sleep 1 \
 && mkdir -p /out \
 && cc -o /out/app -D APP_VERSION="${APP_VERSION}" /src/app/greet.sh /src/app/main.sh

# Not needed by the runtime image: the legacy builder builds it on the way all
# the same, BuildKit only when it is the target (the compose service "test").
FROM build AS test
COPY tests/ /src/tests/
RUN sleep 1 && sh /src/tests/test_app.sh /out/app

# The runtime image, left unnamed like in most projects: the artifact and the
# recipe's tool on the bare base image.
FROM ${BASE_IMAGE}
ARG APP_VERSION=0.0.0
LABEL org.opencontainers.image.version="${APP_VERSION}"
COPY --from=hello /usr/local/bin/hello /usr/local/bin/hello
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/hello"]
CMD ["app"]
