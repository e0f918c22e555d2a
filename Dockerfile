# One image for every lakehose process: `up` (the default, everything embedded in
# /data), or `collector`, `deliver`, `serve` and the admin commands against shared
# Kafka, PostgreSQL and S3 (see deploy/README.md).
#
#   docker build -t lakehose .
#   docker run --rm -p 8080:8080 -v lakehose-data:/data lakehose
#
# CI does not build this image (no container engine there); the processes it
# runs are tested directly, against real servers on loopback.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LAKEHOSE_DATA_DIR=/data

# Only what the package build reads. Every dependency (confluent-kafka, psycopg,
# pyarrow, duckdb and its extensions included) installs from a wheel, so the
# image needs no compiler.
COPY pyproject.toml README.md /tmp/lakehose/
COPY src /tmp/lakehose/src
RUN pip install /tmp/lakehose \
 && rm -rf /tmp/lakehose \
 && groupadd --system --gid 10001 lakehose \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/lakehose lakehose \
 && mkdir /data \
 && chown 10001:10001 /data

# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["lakehose"]
CMD ["up", "--host", "0.0.0.0"]
