# The final stage copies from an unnamed stage: it cannot be cached alone.
FROM busybox:1.36
RUN echo built > /built
FROM busybox:1.36 AS named
FROM named
COPY --from=0 /built /built
