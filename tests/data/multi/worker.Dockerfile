FROM cilocal/busybox:latest AS prep
RUN echo "worker prepared" > /prep

FROM cilocal/busybox:latest
COPY --from=prep /prep /prep
CMD ["cat", "/prep"]
