# The sample Dockerfile of the unit tests: a stage needs another in every way
# Docker allows (FROM, COPY --from=NAME, COPY --from=INDEX, RUN --mount=from=).
ARG BASE_IMAGE=busybox:1.36
ARG RECIPE_REPO=cilocal/recipe

FROM ${BASE_IMAGE} AS base
RUN mkdir -p /opt/shop

# An instance of a recipe image.
FROM ${RECIPE_REPO}:hello AS hello

FROM base AS deps
COPY requirements.txt /opt/shop/requirements.txt

FROM deps AS build
ARG GREETING
RUN echo "$GREETING" > /opt/shop/greeting

# Only the shop-test service needs this stage.
FROM build AS test
RUN test -s /opt/shop/greeting

# Only the docs service needs this stage.
FROM base AS docs
RUN --mount=type=bind,from=deps,source=/opt/shop,target=/deps cp -r /deps /docs

FROM ${BASE_IMAGE}
COPY --from=1 /usr/local/bin/hello /usr/local/bin/hello
COPY --from=build /opt/shop /opt/shop
