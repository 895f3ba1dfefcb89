FROM cilocal/busybox:latest AS ci-base
FROM ci-base AS app
COPY main.sh /main.sh
