FROM busybox:1.36 AS one
FROM busybox:1.36 AS two three
