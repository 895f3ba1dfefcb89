FROM busybox:1.36
ONBUILD RUN echo hello
