# loxo: S3-compatible server with git-like versioning.
#
#   docker build -t loxo .
#   docker run -p 9000:9000 -v loxo-data:/data \
#       -e LOXO_ACCESS_KEY=... -e LOXO_SECRET_KEY=... loxo
#
# Without --database-url loxo starts an embedded PostgreSQL (pgserver) inside
# /data/postgres; with it (see compose/docker-compose.yml) it uses that server.
# Without LOXO_ACCESS_KEY/LOXO_SECRET_KEY it generates root credentials on first
# start, prints them and stores them in /data (mode 0600).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# All runtime dependencies ship manylinux wheels for CPython 3.12 (pgserver
# bundles its own PostgreSQL binaries; they only need glibc and zlib, both in
# the base image), so no compiler is installed. .dockerignore keeps tests,
# docs and local data out of the build context.
COPY . /tmp/loxo-src
RUN pip install /tmp/loxo-src \
    && rm -rf /tmp/loxo-src \
    && loxo --help >/dev/null

# Non-root user: PostgreSQL refuses to run as root, and nothing here needs it.
# The /data directory is created and owned by that user so a named volume
# inherits the ownership (a bind mount must be writable by uid 10001).
RUN groupadd --system --gid 10001 loxo \
    && useradd --system --uid 10001 --gid loxo --create-home --home-dir /home/loxo \
        --shell /usr/sbin/nologin loxo \
    && mkdir -p /data /home/loxo/.run \
    && chown loxo:loxo /data /home/loxo/.run \
    && chmod 0700 /home/loxo/.run

USER loxo
WORKDIR /home/loxo
# pgserver (via platformdirs) wants a private runtime dir.
ENV HOME=/home/loxo \
    XDG_RUNTIME_DIR=/home/loxo/.run

VOLUME /data
EXPOSE 9000

# SIGTERM (docker stop) and SIGINT both shut down gracefully: in-flight
# requests finish, then the embedded PostgreSQL is stopped.
# Liveness: the S3 port accepts connections (the first start initialises the
# embedded PostgreSQL, hence the start period).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 9000), 2).close()"]

ENTRYPOINT ["loxo"]
CMD ["serve", "--listen", "0.0.0.0:9000", "--data-dir", "/data"]
