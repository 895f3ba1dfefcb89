FROM busybox:1.36
RUN <<EOT
echo never ends
