FROM busybox:1.36 AS one
COPY --from=1 /x /x
FROM busybox:1.36 AS two
