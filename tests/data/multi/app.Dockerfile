FROM cilocal/busybox:latest AS base
RUN echo "base built once" > /base

FROM base AS app
COPY app.txt /app.txt
CMD ["cat", "/base", "/app.txt"]

FROM base AS tool
RUN echo "tool" > /tool
CMD ["cat", "/base", "/tool"]
