"""Settings: file, env and flags merge; every problem is reported at once."""

from __future__ import annotations

import pytest

from pathlib import Path

from lakehose.config import load_settings, parse_settings
from lakehose.errors import ConfigError


def test_env_overrides_file_and_types_are_converted() -> None:
    settings = parse_settings({"delivery": {"max_seconds": 30}, "collector": {"port": 9000}},
                              {"LAKEHOSE_DELIVERY__MAX_SECONDS": "2.5", "LAKEHOSE_DELIVERY__MAX_EVENTS": "10"},
                              "/tmp/somewhere")
    assert settings.delivery.max_seconds == 2.5
    assert settings.delivery.max_events == 10
    assert settings.collector.port == 9000
    assert settings.catalog_uri == "sqlite:////tmp/somewhere/catalog.db"
    assert settings.log_uri == "wal:///tmp/somewhere/log"
    assert settings.warehouse_uri == "file:///tmp/somewhere/warehouse"


def test_data_dir_from_environment() -> None:
    settings = parse_settings({}, {"LAKEHOSE_DATA_DIR": "/srv/lh"}, None)
    assert settings.data_dir == "/srv/lh"


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"delivery": {"max_secs": 1}, "nonsense": {}},
                       {"LAKEHOSE_COLLECTOR__PORT": "eighty", "LAKEHOSE_BROKEN__": "1", "LAKEHOSE_WRITE_KEY": "k"}, None)
    text = str(caught.value)
    assert "max_secs" in text and "nonsense" in text and "port" in text and "LAKEHOSE_BROKEN__" in text
    assert len(caught.value.problems) == 4


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_seconds must be positive"):
        parse_settings({"delivery": {"max_seconds": 0}}, {}, None)


def test_registry_limits_have_defaults_and_are_checked() -> None:
    limits = parse_settings({}, {}, None).registry
    assert (limits.max_streams, limits.max_columns, limits.max_depth) == (1000, 500, 8)
    settings = parse_settings({"registry": {"max_columns": 40}}, {"LAKEHOSE_REGISTRY__MAX_STREAMS": "3"}, None)
    assert (settings.registry.max_streams, settings.registry.max_columns) == (3, 40)
    with pytest.raises(ConfigError) as caught:
        parse_settings({"registry": {"max_depth": 0, "max_streams": -1}}, {}, None)
    assert {"[registry] max_depth must be positive",
            "[registry] max_streams must be positive"} <= set(caught.value.problems)
    with pytest.raises(ConfigError, match="max_colums"):
        parse_settings({"registry": {"max_colums": 1}}, {}, None)


def test_query_caps_have_defaults_and_are_checked() -> None:
    query = parse_settings({}, {}, None).query
    assert (query.memory_limit_bytes, query.spill_limit_bytes, query.max_result_bytes) == (1 << 30, 4 << 30, 64 << 20)
    assert (query.max_concurrent, query.queue_seconds) == (4, 2.0)
    assert parse_settings({}, {"LAKEHOSE_QUERY__MAX_CONCURRENT": "1"}, None).query.max_concurrent == 1
    with pytest.raises(ConfigError) as caught:
        parse_settings({"query": {"max_concurrent": 0, "max_result_bytes": -1, "queue_seconds": -1}}, {}, None)
    assert {"[query] max_concurrent must be positive", "[query] max_result_bytes must be positive",
            "[query] queue_seconds must not be negative"} <= set(caught.value.problems)


def test_registry_policy_and_pattern_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"registry": {"auto_create_unknown_fields": "ignore",
                                     "auto_create_pattern": "[unclosed"}}, {}, None)
    assert len(caught.value.problems) == 2
    settings = parse_settings({}, {"LAKEHOSE_REGISTRY__AUTO_CREATE": "true"}, None)
    assert settings.registry.auto_create is True


def test_pgwire_limits_have_defaults_and_are_checked() -> None:
    pg = parse_settings({}, {}, None).pgwire
    assert (pg.max_connections, pg.auth_timeout_seconds, pg.max_message_bytes, pg.max_cursors,
            pg.max_prepared_statements) == (100, 10.0, 8 * 1024 * 1024, 64, 1000)
    assert parse_settings({}, {"LAKEHOSE_PGWIRE__MAX_CURSORS": "3"}, None).pgwire.max_cursors == 3
    with pytest.raises(ConfigError) as caught:
        parse_settings({"pgwire": {"max_connections": 0, "auth_timeout_seconds": -1}}, {}, None)
    assert {"[pgwire] max_connections must be positive",
            "[pgwire] auth_timeout_seconds must be positive"} <= set(caught.value.problems)


HTTP_LIMITS = ("max_inflight_requests", "max_buffered_body_bytes", "max_buffered_body_bytes_per_key",
               "max_connections", "max_request_bytes",
               "max_header_bytes", "max_headers", "header_timeout_seconds", "body_timeout_seconds",
               "linger_seconds", "linger_bytes")


def test_http_limits_have_defaults_and_are_checked() -> None:
    """The HTTP layer's limits default to bounded values and none can be turned off with 0."""
    collector = parse_settings({}, {}, None).collector
    assert (collector.max_connections, collector.max_header_bytes, collector.max_headers) == (1000, 65536, 100)
    assert (collector.header_timeout_seconds, collector.body_timeout_seconds) == (10.0, 30.0)
    env = {f"LAKEHOSE_COLLECTOR__{name.upper()}": "0" for name in HTTP_LIMITS}
    with pytest.raises(ConfigError) as caught:
        parse_settings({}, env, None)
    assert {f"[collector] {name} must be positive" for name in HTTP_LIMITS} == set(caught.value.problems)


def test_a_file_with_several_problems_reports_them_all_in_lakehose_words(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lakehose.toml").write_text(
        'port = 9000\n[colector]\nhost = "0.0.0.0"\n[delivery]\nmax_secs = 1\nmax_events = "many"\n'
        "[query]\nrow_limt = 3\nmax_seconds = 4\n")
    monkeypatch.setenv("LAKEHOSE_QUERY__TIMEOUT", "1")
    monkeypatch.setenv("LAKEHOSE_COLLECTOR__PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(tmp_path))
    assert caught.value.problems == [
        "unknown setting 'port' outside any section; did you mean [collector] port or [pgwire] port?",
        "unknown section [colector]; did you mean [collector]?",
        "[delivery] max_secs: no such key; did you mean max_seconds?",
        "[delivery] max_events = 'many': expected a whole number",
        "[query] row_limt: no such key; did you mean row_limit?",
        "[query] max_seconds: no such key; did you mean timeout_seconds or [delivery] max_seconds?",
        "LAKEHOSE_QUERY__TIMEOUT ([query] timeout): no such key; did you mean timeout_seconds?",
        "LAKEHOSE_COLLECTOR__PORT ([collector] port) = 'eighty': expected a whole number",
    ]
    text = str(caught.value)
    assert str(tmp_path / "lakehose.toml") in text.splitlines()[0]
    assert "Object contains" not in text and "Expected `" not in text
