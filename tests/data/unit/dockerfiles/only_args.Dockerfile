# A Dockerfile without a stage.
ARG BASE=busybox:1.36
