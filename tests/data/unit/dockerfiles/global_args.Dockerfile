ARG REGISTRY=docker.io
ARG BASE="${REGISTRY}/library/alpine:3.19"
ARG UNSET
ARG FLAVOUR=slim TOOLS=${REGISTRY}/tools
FROM ${BASE} AS base
ARG REGISTRY=in-stage.example
FROM ${TOOLS}:${FLAVOUR} AS tools
FROM $REGISTRY/plain AS plain
FROM ${UNSET:-fallback/image} AS defaulted
FROM example/${UNSET:+never}${FLAVOUR:+with-flavour} AS alternate
FROM ${NOT_DECLARED:-undeclared/default} AS undeclared
