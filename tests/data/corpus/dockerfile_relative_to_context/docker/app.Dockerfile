# Not this one: compose reads dockerfile relative to the build context.
FROM cilocal/busybox:latest AS wrong-dockerfile
