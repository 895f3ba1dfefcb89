from --platform=$BUILDPLATFORM golang:1.22 As Builder
From builder aS Runtime
copy --from=BUILDER /out /out
