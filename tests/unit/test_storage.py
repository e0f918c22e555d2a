"""S3 options from settings and environment, and the catalog URI given to SQLAlchemy."""

from __future__ import annotations

import duckdb
import pytest

from lakehose.config import parse_settings
from lakehose.lake.storage import fileio_properties, s3_options
from lakehose.registry.store import sqlalchemy_url


def settings(**lake: str):  # type: ignore[no-untyped-def]
    return parse_settings({"lake": lake}, {}, "/tmp/lakehose-test-data")


def test_a_local_warehouse_needs_no_options() -> None:
    assert s3_options(settings(), {"AWS_ACCESS_KEY_ID": "x"}) is None
    assert fileio_properties(settings()) == {}


def test_settings_win_over_the_environment_and_an_endpoint_means_path_style() -> None:
    options = s3_options(settings(warehouse="s3://lake/events/", s3_endpoint="http://127.0.0.1:9000/",
                                  s3_access_key_id="id", s3_secret_access_key="secret"),
                         {"AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "env-secret",
                          "AWS_SESSION_TOKEN": "env-token", "AWS_REGION": "eu-west-3"})
    assert options is not None
    assert (options.bucket, options.prefix) == ("lake", "s3://lake/events/")
    assert options.fileio_properties() == {
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO", "s3.endpoint": "http://127.0.0.1:9000",
        "s3.force-virtual-addressing": "false", "s3.region": "eu-west-3",
        "s3.access-key-id": "id", "s3.secret-access-key": "secret"}  # no token: it belongs to env-id
    assert options.duckdb_secret_sql() == (
        "CREATE OR REPLACE SECRET lakehose_lake (TYPE s3, PROVIDER config, SCOPE 's3://lake/events/', "
        "KEY_ID 'id', SECRET 'secret', REGION 'eu-west-3', ENDPOINT '127.0.0.1:9000', "
        "URL_STYLE 'path', USE_SSL false)")


def test_the_environment_fills_in_and_aws_itself_gets_virtual_hosts_and_tls() -> None:
    options = s3_options(settings(warehouse="s3://lake"),
                         {"AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "it's",
                          "AWS_SESSION_TOKEN": "tok", "AWS_DEFAULT_REGION": "ap-south-1"})
    assert options is not None and options.endpoint is None and options.prefix == "s3://lake/"
    assert options.fileio_properties() == {
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO", "s3.region": "ap-south-1",
        "s3.access-key-id": "env-id", "s3.secret-access-key": "it's", "s3.session-token": "tok"}
    sql = options.duckdb_secret_sql()
    assert "SECRET 'it''s'" in sql and "URL_STYLE 'vhost'" in sql and "USE_SSL true" in sql
    assert "ENDPOINT" not in sql
    duckdb.extract_statements(sql)  # it parses


def test_an_endpoint_without_scheme_or_region() -> None:
    options = s3_options(settings(warehouse="s3://b/p"), {"AWS_ENDPOINT_URL": "minio.internal:9000"})
    assert options is not None
    assert (options.endpoint, options.endpoint_host, options.use_ssl, options.region) == \
        ("https://minio.internal:9000", "minio.internal:9000", True, "us-east-1")
    assert "s3.access-key-id" not in options.fileio_properties()
    assert "KEY_ID" not in options.duckdb_secret_sql()


@pytest.mark.parametrize(("uri", "expected"), [
    ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
    ("postgres://u@h/db?sslmode=require", "postgresql+psycopg://u@h/db?sslmode=require"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("sqlite:////data/catalog.db", "sqlite:////data/catalog.db"),
])
def test_catalog_uri_to_sqlalchemy(uri: str, expected: str) -> None:
    assert sqlalchemy_url(uri) == expected
