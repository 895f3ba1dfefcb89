FROM cilocal/busybox:latest AS deps
FROM deps AS app
COPY main.sh /main.sh
