FROM busybox:1.36 AS base
FROM base AS runtime
