# The sample Dockerfile of the unit tests: a stage needs another in every way
# Docker allows (FROM, COPY --from=NAME, COPY --from=INDEX, RUN --mount=from=),
# and the final image needs every stage.
ARG BASE_IMAGE=busybox:1.36
ARG RECIPE_REPO=cilocal/recipe

FROM ${BASE_IMAGE} AS base
RUN mkdir -p /opt/shop

# An instance of a recipe image.
FROM ${RECIPE_REPO}:hello AS hello

FROM base AS deps
COPY requirements.txt /opt/shop/requirements.txt

FROM ${BASE_IMAGE} AS assets
RUN mkdir -p /assets && echo "body {}" > /assets/site.css

FROM deps AS build
ARG GREETING
RUN --mount=type=bind,from=assets,source=/assets,target=/assets cp -r /assets /opt/shop/
RUN echo "$GREETING" > /opt/shop/greeting

FROM ${BASE_IMAGE}
COPY --from=1 /usr/local/bin/hello /usr/local/bin/hello
COPY --from=build /opt/shop /opt/shop
