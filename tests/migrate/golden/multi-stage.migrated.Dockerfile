# syntax=docker/dockerfile:1
# A Flask app built into a venv, served by gunicorn: written for python:3.13-slim.
ARG PYTHON=python:3.13-slim

FROM registry.example/kiln/python:3.13-dev AS build
WORKDIR /app
RUN python -m venv /venv
COPY requirements.txt .
RUN /venv/bin/pip install -r requirements.txt
RUN <<EOT
echo "a heredoc: FROM ubuntu:24.04 here is not an instruction"
EOT

from   registry.example/kiln/node:20.19-dev   as   assets   
COPY package.json package-lock.json ./
RUN npm ci && npm run build

FROM --platform=$BUILDPLATFORM golang:1.23 AS tools

FROM ${PYTHON} AS test
COPY --from=build /venv /venv

FROM scratch AS empty

FROM build AS check
RUN /venv/bin/python -m compileall /app

FROM \
    registry.example/kiln/python:3.13
COPY --from=build /venv /venv
COPY --from=assets /dist /app/static
COPY app.py /app/
USER nonroot
EXPOSE 8000
ENTRYPOINT ["/venv/bin/gunicorn", "--bind", "0.0.0.0:8000", "app:app"]
