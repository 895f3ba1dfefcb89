# Every way a stage can need an earlier one, and references that are images.
FROM busybox:1.36 AS a
FROM busybox:1.36 AS b
FROM busybox:1.36
FROM a AS c
COPY --from=b /b /b
COPY --from=2 /unnamed /unnamed
COPY --from=alpine:3.19 /etc/os-release /alpine-release
FROM busybox:1.36 AS d
RUN --mount=type=cache,target=/cache --mount=type=bind,from=c,target=/c true
ADD --from=b /b /b2
FROM busybox:1.36 AS e
FROM d AS f
