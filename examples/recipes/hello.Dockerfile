# Recipe "hello": a tini-like entrypoint wrapper that announces itself, then
# execs the command.  Like the vsi_common recipes, the tool is installed by
# ONBUILD triggers, i.e. when a stage is built FROM this image; its version is
# chosen there with the HELLO_VERSION build arg.
ARG BASE_IMAGE=cilocal/busybox:latest
FROM ${BASE_IMAGE}

# The tool's "release", installed by the trigger below.  (A real recipe would
# download it there; this one has to build offline.)
COPY hello.sh /usr/local/share/hello/hello.sh

ONBUILD ARG HELLO_VERSION=1.0.0
ONBUILD RUN mkdir -p /usr/local/bin \
         && sed "s/@HELLO_VERSION@/${HELLO_VERSION}/" /usr/local/share/hello/hello.sh \
              > /usr/local/bin/hello \
         && chmod 755 /usr/local/bin/hello \
         && /usr/local/bin/hello true
