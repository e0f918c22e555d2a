"""Where the lake's files live: the S3 options, resolved once for every reader and writer.

A ``file://`` warehouse needs nothing. An ``s3://bucket/prefix`` warehouse needs
an endpoint, a region and credentials, each taken from ``[lake] s3_*`` or, when
that is empty, from the usual AWS variables (``AWS_ENDPOINT_URL``,
``AWS_REGION`` then ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``; ``AWS_SESSION_TOKEN`` only with a key id that also
came from the environment). With an endpoint (an S3-API server such as MinIO
or moto) requests use path-style URLs, and an ``http://`` endpoint turns TLS
off. pyiceberg (writes) and DuckDB (queries) get their settings from here, so
the two can never disagree about where the lake is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from lakehose.config import Settings

ARROW_FILE_IO = "pyiceberg.io.pyarrow.PyArrowFileIO"
# Used when an endpoint is given without a region: S3-API servers accept any region.
DEFAULT_ENDPOINT_REGION = "us-east-1"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class S3Options:
    """How to reach an ``s3://`` warehouse; ``None`` fields are left to the client's defaults."""

    warehouse: str  # s3://bucket/prefix, as configured
    endpoint: str | None = None  # a URL with its scheme, e.g. http://127.0.0.1:9000
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @property
    def bucket(self) -> str:
        return urlparse(self.warehouse).netloc

    @property
    def prefix(self) -> str:
        """The warehouse as a directory: ``s3://bucket/prefix/`` (always one trailing slash)."""
        return self.warehouse.rstrip("/") + "/"

    @property
    def path_style(self) -> bool:
        return self.endpoint is not None

    @property
    def use_ssl(self) -> bool:
        return self.endpoint is None or urlparse(self.endpoint).scheme != "http"

    @property
    def endpoint_host(self) -> str | None:
        """``host:port`` of the endpoint, the form DuckDB wants (it adds the scheme itself)."""
        if self.endpoint is None:
            return None
        parsed = urlparse(self.endpoint)
        return (parsed.netloc + parsed.path).rstrip("/")

    def fileio_properties(self) -> dict[str, str]:
        """Properties for pyiceberg's ``PyArrowFileIO`` (pyiceberg 0.12 names)."""
        props = {"py-io-impl": ARROW_FILE_IO}
        if self.endpoint is not None:
            props["s3.endpoint"] = self.endpoint
            props["s3.force-virtual-addressing"] = "false"  # path-style: http://host/bucket/key
        for key, value in (("s3.region", self.region), ("s3.access-key-id", self.access_key_id),
                           ("s3.secret-access-key", self.secret_access_key),
                           ("s3.session-token", self.session_token)):
            if value:
                props[key] = value
        return props

    def duckdb_secret_sql(self, name: str = "lakehose_lake", region: str | None = None) -> str:
        """``CREATE SECRET`` for DuckDB's httpfs, scoped to the warehouse prefix.

        ``region`` overrides ``self.region`` (the query engine resolves the
        bucket's region when none was configured). Without keys the secret has
        none and requests go unsigned (public buckets); DuckDB's credential
        chain needs the ``aws`` extension, which is not shipped here.
        """
        parts = ["TYPE s3", "PROVIDER config", f"SCOPE {_sql_literal(self.prefix)}"]
        region = region or self.region
        for option, value in (("KEY_ID", self.access_key_id), ("SECRET", self.secret_access_key),
                              ("SESSION_TOKEN", self.session_token), ("REGION", region),
                              ("ENDPOINT", self.endpoint_host)):
            if value:
                parts.append(f"{option} {_sql_literal(value)}")
        parts.append(f"URL_STYLE {_sql_literal('path' if self.path_style else 'vhost')}")
        parts.append(f"USE_SSL {'true' if self.use_ssl else 'false'}")
        return f"CREATE OR REPLACE SECRET {name} ({', '.join(parts)})"


def is_s3(uri: str) -> bool:
    return urlparse(uri).scheme == "s3"


def s3_options(settings: Settings, environ: Mapping[str, str] | None = None) -> S3Options | None:
    """The S3 options of ``settings``' warehouse, or ``None`` when the lake is not on S3."""
    warehouse = settings.warehouse_uri
    if not is_s3(warehouse):
        return None
    env = os.environ if environ is None else environ
    lake = settings.lake
    endpoint = lake.s3_endpoint or env.get("AWS_ENDPOINT_URL") or None
    if endpoint is not None and "://" not in endpoint:
        endpoint = "https://" + endpoint
    region = lake.s3_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    if region is None and endpoint is not None:
        region = DEFAULT_ENDPOINT_REGION
    key_id = lake.s3_access_key_id or env.get("AWS_ACCESS_KEY_ID") or None
    secret = lake.s3_secret_access_key or env.get("AWS_SECRET_ACCESS_KEY") or None
    token = env.get("AWS_SESSION_TOKEN") if key_id and not lake.s3_access_key_id else None
    return S3Options(warehouse, endpoint.rstrip("/") if endpoint else None, region, key_id, secret,
                     token or None)


def fileio_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg FileIO properties for the warehouse (none for a local one)."""
    options = s3_options(settings)
    return options.fileio_properties() if options else {}
