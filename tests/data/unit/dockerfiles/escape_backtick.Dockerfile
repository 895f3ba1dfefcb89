# escape=`
# With a backtick escape, a backslash is a plain character (Windows paths) and
# a backtick continues the line: the FROM in the continuation is RUN text.
FROM mcr.microsoft.com/windows/nanoserver:ltsc2022 AS tools
RUN echo C:\tools `
    from x as y
FROM tools AS app
COPY --from=tools C:\tools C:\app
