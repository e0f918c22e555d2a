"""Enough of PostgreSQL's catalog for psql, psycopg, SQLAlchemy and JDBC metadata.

DuckDB ships a ``pg_catalog`` emulation; where it falls short of what clients
send, a schema ``pg_compat`` holds views and macros that patch it, and
:func:`rewrite` points client SQL at them:

* the lake's tables are DuckDB views, so ``pg_class`` reports them as tables
  (``relkind 'r'``, which is what ``\\dt`` and SQLAlchemy list), and hides the
  ``main`` duplicates and ``pg_compat`` itself;
* DuckDB's ``pg_attribute``/``pg_type`` use DuckDB's own type ids, so both are
  replaced by PostgreSQL's OIDs (the ones :mod:`lakehose.pgwire.types` sends);
* functions clients call that DuckDB lacks (``pg_get_userbyid``,
  ``pg_encoding_to_char``, ``format_type`` with PostgreSQL OIDs...);
* syntax DuckDB does not parse: ``OPERATOR(pg_catalog.~)``, ``COLLATE
  pg_catalog.default``, ``'name'::regclass`` and ``pg_catalog.f(...)`` calls.

The rewrite works on tokens (strings, quoted names and comments are never
touched), and only SELECTs reach DuckDB, inside the same sandbox as /v1/query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import duckdb

from lakehose.pgwire import types as t

SCHEMA = "pg_compat"
SERVER_VERSION = "16.0"

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>[eE]?'(?:[^']|'')*')
  | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<param>\$\d+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<cast>::)
  | (?P<op>[^\sA-Za-z0-9_'"$])
""", re.VERBOSE | re.DOTALL)


def tokens(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pairs covering ``sql`` exactly; an unclosed quote becomes one token."""
    pos = 0
    while pos < len(sql):
        match = _TOKEN.match(sql, pos)
        if match is None:  # an unterminated string or comment: the rest, unparsed
            yield "rest", sql[pos:]
            return
        kind = match.lastgroup if match.lastgroup != "tag" else "dollar"
        yield kind or "op", match.group()
        pos = match.end()


def split_statements(sql: str) -> list[str]:
    """The statements of a simple-query string, split at semicolons outside quotes and comments."""
    statements: list[str] = []
    current: list[str] = []
    for kind, text in tokens(sql):
        if kind == "op" and text == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(text)
    statements.append("".join(current))
    return [s for s in statements if leading_words(s, 1)]


def leading_words(sql: str, n: int) -> list[str]:
    """The first ``n`` words/symbols of a statement, upper-cased, comments skipped."""
    words: list[str] = []
    for kind, text in tokens(sql):
        if kind in ("space", "comment"):
            continue
        words.append(text.upper() if kind == "word" else text)
        if len(words) == n:
            break
    return words


# Catalog names clients use that pg_compat replaces (tables and functions).
# Catalogs the lake has nothing in (no policies, triggers, publications...): empty, typed.
_EMPTY: dict[str, str] = {
    "pg_policy": "oid INTEGER, polname VARCHAR, polrelid INTEGER, polcmd VARCHAR, polpermissive BOOLEAN, "
                 "polroles INTEGER[], polqual VARCHAR, polwithcheck VARCHAR",
    "pg_statistic_ext": "oid INTEGER, stxrelid INTEGER, stxname VARCHAR, stxnamespace INTEGER, "
                        "stxowner INTEGER, stxstattarget INTEGER, stxkeys INTEGER[], stxkind VARCHAR[]",
    "pg_publication": "oid INTEGER, pubname VARCHAR, pubowner INTEGER, puballtables BOOLEAN, "
                      "pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, "
                      "pubviaroot BOOLEAN",
    "pg_publication_rel": "oid INTEGER, prpubid INTEGER, prrelid INTEGER, prqual VARCHAR, prattrs INTEGER[]",
    "pg_publication_namespace": "oid INTEGER, pnpubid INTEGER, pnnspid INTEGER",
    "pg_trigger": "oid INTEGER, tgrelid INTEGER, tgparentid INTEGER, tgname VARCHAR, tgfoid INTEGER, "
                  "tgtype INTEGER, tgenabled VARCHAR, tgisinternal BOOLEAN, tgconstraint INTEGER",
    "pg_partitioned_table": "partrelid INTEGER, partstrat VARCHAR, partnatts INTEGER, partattrs INTEGER[]",
    "pg_foreign_table": "ftrelid INTEGER, ftserver INTEGER, ftoptions VARCHAR[]",
    "pg_rewrite": "oid INTEGER, rulename VARCHAR, ev_class INTEGER, ev_type VARCHAR, ev_enabled VARCHAR, "
                  "is_instead BOOLEAN",
    "pg_inherits": "inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_extension": "oid INTEGER, extname VARCHAR, extowner INTEGER, extnamespace INTEGER, "
                    "extversion VARCHAR",
    "pg_range": "rngtypid INTEGER, rngsubtype INTEGER, rngmultitypid INTEGER",
    "pg_index": "indexrelid INTEGER, indrelid INTEGER, indnatts INTEGER, indnkeyatts INTEGER, "
                "indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, "
                "indisexclusion BOOLEAN, indimmediate BOOLEAN, indisclustered BOOLEAN, indisvalid BOOLEAN, "
                "indisready BOOLEAN, indislive BOOLEAN, indisreplident BOOLEAN, indkey INTEGER[], "
                "indcollation INTEGER[], indclass INTEGER[], indoption INTEGER[], indexprs VARCHAR, "
                "indpred VARCHAR",
    "pg_constraint": "oid INTEGER, conname VARCHAR, connamespace INTEGER, contype VARCHAR, "
                     "condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid INTEGER, "
                     "contypid INTEGER, conindid INTEGER, conparentid INTEGER, confrelid INTEGER, "
                     "confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN, "
                     "coninhcount INTEGER, connoinherit BOOLEAN, conkey INTEGER[], confkey INTEGER[], "
                     "conbin VARCHAR",
    "pg_opclass": "oid INTEGER, opcmethod INTEGER, opcname VARCHAR, opcnamespace INTEGER, "
                  "opcdefault BOOLEAN, opcintype INTEGER",
    "pg_auth_members": "oid INTEGER, roleid INTEGER, member INTEGER, grantor INTEGER, admin_option BOOLEAN, "
                       "inherit_option BOOLEAN, set_option BOOLEAN",
    "pg_matviews": "schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, definition VARCHAR",
}
_TABLES = ("pg_class", "pg_namespace", "pg_attribute", "pg_type", "pg_database", "pg_roles",
           "pg_user", "pg_settings", "pg_collation", "pg_am", *_EMPTY)
_FUNCTIONS = ("pg_get_userbyid", "pg_encoding_to_char", "format_type", "version", "current_schema",
              "current_database", "current_schemas", "obj_description", "col_description",
              "pg_get_indexdef", "pg_get_constraintdef", "pg_get_partkeydef", "pg_get_statisticsobjdef_columns",
              "pg_relation_is_publishable", "regclass_oid", "array_upper", "pg_get_function_result",
              "pg_get_function_arguments", "pg_get_expr", "pg_get_serial_sequence",
              "pg_collation_is_visible", "to_regtype", "quote_ident",
              "pg_table_size", "pg_database_size", "pg_relation_size", "pg_total_relation_size", "pg_size_pretty", "pg_type_is_visible", "pg_function_is_visible", "current_setting", "set_config", "has_schema_privilege")
_OVERRIDES = {name.lower() for name in _TABLES + _FUNCTIONS}
_INFORMATION_SCHEMA = ("tables", "columns", "schemata")
_RENAMED = {"json_build_object": "json_object", "jsonb_build_object": "json_object",
            "json_build_array": "json_array", "jsonb_build_array": "json_array"}
_CLAUSES = {"AS", "WHERE", "JOIN", "ON", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "ORDER", "GROUP",
            "LIMIT", "UNION", "WITH", "AND", "OR", "FROM", "SELECT", "OFFSET", "HAVING"}
_REG_TYPES = {"regclass", "regtype", "regproc", "regprocedure", "regnamespace", "regrole", "regoper",
              "regconfig", "oid", "xid", "cid", "tid"}
_TEXT_TYPES = {"name", "char", "bpchar", "text", "varchar", "citext"}


def rewrite(sql: str, backend_pid: int) -> str:
    """Client SQL in terms DuckDB and ``pg_compat`` understand (see the module docstring)."""
    toks = [(k, v) for k, v in tokens(sql)]
    out: list[str] = []
    i = 0

    def significant(j: int) -> int:
        while j < len(toks) and toks[j][0] in ("space", "comment"):
            j += 1
        return j

    while i < len(toks):
        kind, text = toks[i]
        low = text.lower()
        nxt = significant(i + 1)
        operator = None
        if kind == "word" and low == "operator" and nxt < len(toks) and toks[nxt][1] == "(":
            # OPERATOR(pg_catalog.~) -> ~
            close = nxt
            while close < len(toks) and toks[close][1] != ")":
                close += 1
            operator = "".join(v for k, v in toks[nxt + 1:close] if k == "op" and v != ".")
            i = close + 1
        elif kind == "op" and text in "!~":
            j = i
            while j < len(toks) and toks[j][0] == "op" and toks[j][1] in "!~*":
                j += 1
            if "~" in (found := "".join(v for _, v in toks[i:j])):
                operator, i = found, j
        if operator is not None:
            out.append(" " + _regex(operator, toks, significant(i)) + " ")
            continue
        if kind == "word" and low == "collate":
            # COLLATE pg_catalog.default / "C" / default: DuckDB's collations differ; drop it
            j = significant(i + 1)
            if j + 2 < len(toks) and toks[j + 1][1] == ".":
                j = significant(j + 2)
            i = j + 1
            continue
        if kind == "word" and low == "as" and nxt < len(toks):
            # CAST(x AS REGCLASS) / CAST(x AS pg_catalog.name)
            j = nxt
            if j + 2 < len(toks) and toks[j][1].lower() == "pg_catalog" and toks[j + 1][1] == ".":
                j += 2
            name = toks[j][1].lower().strip('"')
            close = significant(j + 1)
            if close < len(toks) and toks[close][1] == ")" and (name in _REG_TYPES or name in _TEXT_TYPES):
                last = max((k for k, v in enumerate(out) if v.strip()), default=-1)
                if name == "regclass" and last >= 0 and out[last].startswith("'"):
                    out[last] = f"{SCHEMA}.regclass_oid({out[last]})"
                out.append("AS " + ("BIGINT" if name in _REG_TYPES else "VARCHAR"))
                i = j + 1
                continue
        if kind == "cast":
            j = nxt
            qualified = j + 2 < len(toks) and toks[j][1].lower() == "pg_catalog" and toks[j + 1][1] == "."
            if qualified:
                j += 2
            name = toks[j][1].lower().strip('"') if j < len(toks) else ""
            if name in _REG_TYPES:
                previous = out[-1] if out else ""
                if name in ("regclass",) and previous.startswith("'"):
                    out[-1] = f"{SCHEMA}.regclass_oid({previous})"
                else:
                    out.append("::BIGINT")
                i = j + 1
                continue
            if name in _TEXT_TYPES:
                out.append("::VARCHAR")
                i = j + 1
                continue
            if qualified:
                out.append("::")
                i = j
                continue
        if kind == "word" and low == "information_schema" and nxt < len(toks) and toks[nxt][1] == ".":
            target = significant(nxt + 1)
            if target < len(toks) and toks[target][1].lower().strip('"') in _INFORMATION_SCHEMA:
                out.append(f"{SCHEMA}.information_schema_{toks[target][1].lower().strip(chr(34))}")
                i = target + 1
                continue
        if kind == "word" and low == "pg_catalog" and nxt < len(toks) and toks[nxt][1] == ".":
            target = significant(nxt + 1)
            if target < len(toks):
                name = toks[target][1].lower()
                after = significant(target + 1)
                is_call = after < len(toks) and toks[after][1] == "("
                if name in _OVERRIDES:
                    out.append(f"{SCHEMA}.{name}")
                    i = target + 1
                    continue
                if is_call:  # DuckDB's functions are not reachable through pg_catalog.
                    i = target
                    continue
        if kind == "word" and low in _OVERRIDES and not (out and out[-1] == "."):
            after = nxt
            is_call = after < len(toks) and toks[after][1] == "("
            if (low in _FUNCTIONS) == is_call:
                out.append(f"{SCHEMA}.{low}")
                i += 1
                continue
        if kind == "word" and low == "any" and nxt < len(toks) and toks[nxt][1] == "(":
            # a.attnum = ANY(ix.indkey): DuckDB makes a column's ANY a subquery, which it cannot put in an
            # outer join's condition (SQLAlchemy 1.4's index reflection); list_contains says the same
            start = significant(nxt + 1)
            end = _identifier_end(toks, start)
            close = significant(end)
            equals = max((k for k, v in enumerate(out) if v.strip()), default=-1)
            left = _identifier_start(out, equals - 1) if equals >= 0 and out[equals] == "=" else -1
            if end > start and close < len(toks) and toks[close][1] == ")" and left >= 0:
                column = "".join(out[left:equals]).strip()
                del out[left:]
                out.append(f"list_contains({''.join(v for _, v in toks[nxt + 1:close])}, {column})")
                i = close + 1
                continue
        if (kind == "word" and low in ("generate_series", "unnest") and nxt < len(toks) and toks[nxt][1] == "("
                and next((v.lower() for v in reversed(out) if v.lower() in ("select", "from")), "") == "from"):
            # FROM generate_series(...) s: in PostgreSQL ``s`` is also the column; DuckDB needs s(s).
            # In a select list (SQLAlchemy 1.4's primary keys: SELECT unnest(ix.indkey) attnum) s is a plain alias.
            depth, close = 0, nxt
            while close < len(toks):
                depth += {"(": 1, ")": -1}.get(toks[close][1], 0)
                if depth == 0:
                    break
                close += 1
            alias = significant(close + 1)
            after = significant(alias + 1)
            if (alias < len(toks) and toks[alias][0] == "word" and toks[alias][1].upper() not in _CLAUSES
                    and (after >= len(toks) or toks[after][1] != "(")):
                toks[alias] = ("alias", f"{toks[alias][1]}({toks[alias][1]})")
        if kind == "word" and low in _RENAMED and nxt < len(toks) and toks[nxt][1] == "(":
            out.append(_RENAMED[low])
            i += 1
            continue
        if kind == "word" and low == "pg_backend_pid" and nxt < len(toks) and toks[nxt][1] == "(":
            close = significant(nxt + 1)
            out.append(str(backend_pid))
            i = close + 1
            continue
        out.append(text)
        i += 1
    return "".join(out)


def _identifier_end(toks: list[tuple[str, str]], start: int) -> int:
    """Where the dotted name (``ix.indkey``) starting at ``start`` ends; ``start`` if there is none."""
    end = start
    while end < len(toks) and toks[end][0] == "word":
        end += 1
        if end == len(toks) or toks[end][1] != ".":
            return end
        end += 1
    return start


def _identifier_start(out: list[str], last: int) -> int:
    """Where the dotted name ending at ``out[last]`` (spaces skipped) starts; -1 if it is not one."""
    while last >= 0 and not out[last].strip():
        last -= 1
    start = -1
    while last >= 0 and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", out[last]):
        start = last
        if last >= 1 and out[last - 1] == ".":
            last -= 2
        else:
            break
    return start


def _regex(operator: str, toks: list[tuple[str, str]], right: int) -> str:
    """PostgreSQL's ``~`` matches anywhere, DuckDB's only the whole string: widen the pattern.

    Applies to a string literal on the right (what psql and catalog queries send);
    ``~*`` becomes a case-insensitive pattern.
    """
    if operator not in ("~", "!~", "~*", "!~*") or right >= len(toks) or toks[right][0] != "string":
        return operator
    flags = "(?is)" if operator.endswith("*") else "(?s)"
    pattern = toks[right][1][1:-1]
    toks[right] = ("string", f"'{flags}.*(?:{pattern}).*'")
    return operator.rstrip("*")


# --- the pg_compat schema -----------------------------------------------------------------

# (oid, name, format_type text, typlen, category, element oid, array oid)
_PG_TYPES: list[tuple[int, str, str, int, str, int, int]] = [
    (t.BOOL, "bool", "boolean", 1, "B", 0, 1000), (t.BYTEA, "bytea", "bytea", -1, "U", 0, 1001),
    (t.CHAR, "char", '"char"', 1, "S", 0, 1002), (t.NAME, "name", "name", 64, "S", 0, 1003),
    (t.INT8, "int8", "bigint", 8, "N", 0, 1016), (t.INT2, "int2", "smallint", 2, "N", 0, 1005),
    (t.INT4, "int4", "integer", 4, "N", 0, 1007), (t.TEXT, "text", "text", -1, "S", 0, 1009),
    (t.OID, "oid", "oid", 4, "N", 0, 1028), (t.JSON, "json", "json", -1, "U", 0, 199),
    (t.FLOAT4, "float4", "real", 4, "N", 0, 1021),
    (t.FLOAT8, "float8", "double precision", 8, "N", 0, 1022),
    (t.VARCHAR, "varchar", "character varying", -1, "S", 0, 1015),
    (t.DATE, "date", "date", 4, "D", 0, 1182), (t.TIME, "time", "time without time zone", 8, "D", 0, 1183),
    (t.TIMESTAMP, "timestamp", "timestamp without time zone", 8, "D", 0, 1115),
    (t.TIMESTAMPTZ, "timestamptz", "timestamp with time zone", 8, "D", 0, 1185),
    (t.INTERVAL, "interval", "interval", 16, "T", 0, 1187),
    (t.NUMERIC, "numeric", "numeric", -1, "N", 0, 1231), (t.UUID, "uuid", "uuid", 16, "U", 0, 2951),
    (t.JSONB, "jsonb", "jsonb", -1, "U", 0, 3807),
]
_PG_TYPES += [(array, "_" + name, shown + "[]", -1, "A", oid, 0)
              for oid, name, shown, _, _, _, array in list(_PG_TYPES)]


def _case(mapping: dict[str, int], column: str) -> str:
    whens = " ".join(f"WHEN {column} = '{name}' THEN {oid}" for name, oid in mapping.items())
    return f"CASE {whens} WHEN {column} LIKE 'DECIMAL%' THEN {t.NUMERIC} ELSE {t.TEXT} END"


def _type_oid_sql(column: str) -> str:
    """SQL mapping a duckdb_columns() data_type to the OID the wire sends (as types.pg_type)."""
    scalars = {name: t.pg_type(name).oid for name in t.DUCKDB_SCALARS}
    arrays = {name + "[]": t.pg_type(name + "[]").oid for name in t.DUCKDB_SCALARS}
    return (f"CASE WHEN {column} LIKE 'DECIMAL%[]' THEN {t.ARRAY_OF[t.NUMERIC]} "
            f"WHEN {column} LIKE '%[]' THEN {_case(arrays, column)} ELSE {_case(scalars, column)} END")


def _statements(namespace: str) -> list[str]:
    hidden = f"('{SCHEMA}', 'main')"
    types_rows = ", ".join(
        f"({oid}, '{name}', '{shown.replace(chr(39), chr(39) * 2)}', {size}, '{cat}', {elem}, {arr})"
        for oid, name, shown, size, cat, elem, arr in _PG_TYPES)
    s = SCHEMA
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE OR REPLACE TABLE {s}.types(oid INTEGER, typname VARCHAR, shown VARCHAR, typlen INTEGER, "
        f"typcategory VARCHAR, typelem INTEGER, typarray INTEGER)",
        f"INSERT INTO {s}.types VALUES {types_rows}",
        f"CREATE OR REPLACE MACRO {s}.version() AS 'PostgreSQL {SERVER_VERSION} (lakehose on DuckDB "
        f"{duckdb.__version__})'",
        f"CREATE OR REPLACE MACRO {s}.current_schema() AS '{namespace}'",
        f"CREATE OR REPLACE MACRO {s}.current_database() AS 'lakehose'",
        f"CREATE OR REPLACE MACRO {s}.current_schemas(implicit) AS "
        f"CASE WHEN implicit THEN ['pg_catalog', '{namespace}'] ELSE ['{namespace}'] END",
        f"CREATE OR REPLACE MACRO {s}.array_upper(a, d) AS len(a)",
        f"CREATE OR REPLACE MACRO {s}.pg_get_userbyid(id) AS 'lakehose'",
        f"CREATE OR REPLACE MACRO {s}.pg_encoding_to_char(id) AS 'UTF8'",
        f"CREATE OR REPLACE MACRO {s}.obj_description(id, catalog := NULL) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.col_description(id, n) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_get_indexdef(id, n := 0, p := false) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_get_constraintdef(id, p := false) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_get_partkeydef(id) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_get_statisticsobjdef_columns(id) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_get_function_result(id) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_get_function_arguments(id) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_relation_is_publishable(id) AS false",
        f"CREATE OR REPLACE MACRO {s}.pg_get_serial_sequence(relation, column_name) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.pg_collation_is_visible(id) AS true",
        f"CREATE OR REPLACE MACRO {s}.pg_table_size(id) AS NULL::BIGINT",
        f"CREATE OR REPLACE MACRO {s}.pg_database_size(id) AS NULL::BIGINT",
        f"CREATE OR REPLACE MACRO {s}.pg_relation_size(id, fork := 'main') AS NULL::BIGINT",
        f"CREATE OR REPLACE MACRO {s}.pg_total_relation_size(id) AS NULL::BIGINT",
        f"CREATE OR REPLACE MACRO {s}.pg_size_pretty(n) AS format_bytes(n::BIGINT)",
        f"CREATE OR REPLACE VIEW {s}.pg_am AS SELECT 2 AS oid, 'heap' AS amname, "
        f"'heap_tableam_handler' AS amhandler, 't' AS amtype",
        f"CREATE OR REPLACE MACRO {s}.quote_ident(name) AS "
        f"CASE WHEN regexp_full_match(name, '[a-z_][a-z0-9_$]*') THEN name "
        f"ELSE '\"' || replace(name, '\"', '\"\"') || '\"' END",
        f"CREATE OR REPLACE MACRO {s}.to_regtype(name) AS (SELECT oid FROM {s}.types WHERE typname = name)",
        f"CREATE OR REPLACE MACRO {s}.pg_type_is_visible(id) AS true",
        f"CREATE OR REPLACE MACRO {s}.pg_function_is_visible(id) AS true",
        f"CREATE OR REPLACE MACRO {s}.pg_get_expr(expr, relation, pretty := false) AS NULL::VARCHAR",
        f"CREATE OR REPLACE MACRO {s}.has_schema_privilege(a, b := NULL, c := NULL) AS true",
        f"CREATE OR REPLACE MACRO {s}.current_setting(name, missing_ok := false) AS "
        f"CASE lower(name) WHEN 'server_version_num' THEN '160000' WHEN 'server_version' THEN "
        f"'{SERVER_VERSION}' WHEN 'timezone' THEN 'UTC' WHEN 'search_path' THEN '{namespace}' "
        f"WHEN 'max_identifier_length' THEN '63' WHEN 'standard_conforming_strings' THEN 'on' "
        f"ELSE NULL END",
        f"CREATE OR REPLACE MACRO {s}.set_config(name, value, local) AS value",
        f"CREATE OR REPLACE MACRO {s}.format_type(id, typmod) AS "
        f"CASE WHEN id = {t.NUMERIC} AND typmod > 4 THEN "
        f"'numeric(' || ((typmod - 4) >> 16) || ',' || ((typmod - 4) & 65535) || ')' "
        f"ELSE (SELECT shown FROM {s}.types WHERE oid = id) END",
        # Views in this schema see its macros first (current_database...), so they are built on
        # duckdb_schemas() rather than on DuckDB's pg_namespace, which calls current_database().
        f"CREATE OR REPLACE VIEW {s}.pg_namespace AS SELECT oid, schema_name AS nspname, "
        f"10 AS nspowner, NULL AS nspacl FROM duckdb_schemas() WHERE database_name NOT IN "
        f"('system', 'temp') AND schema_name NOT IN {hidden} UNION ALL SELECT 11, 'pg_catalog', 10, NULL "
        f"UNION ALL SELECT 13000, 'information_schema', 10, NULL",
        f"CREATE OR REPLACE VIEW {s}.pg_class AS SELECT c.* REPLACE ("
        f"CASE WHEN c.relkind = 'v' AND n.nspname = '{namespace}' THEN 'r' ELSE c.relkind END AS relkind, "
        f"10 AS relowner, CASE WHEN c.relkind IN ('r', 'v') THEN 2 ELSE 0 END AS relam, "
        f"NULL::VARCHAR[] AS reloptions, NULL::VARCHAR[] AS relacl, 'd' AS relreplident), "
        f"false AS relforcerowsecurity FROM pg_catalog.pg_class c "
        f"JOIN {s}.pg_namespace n ON n.oid = c.relnamespace",
        f"CREATE OR REPLACE MACRO {s}.regclass_oid(name) AS (SELECT c.oid FROM {s}.pg_class c "
        f"JOIN {s}.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = "
        f"split_part(name, '.', -1) AND (NOT contains(name, '.') OR n.nspname = split_part(name, '.', 1)) "
        f"LIMIT 1)",
        f"CREATE OR REPLACE VIEW {s}.pg_attribute AS SELECT a.* REPLACE ("
        f"({_type_oid_sql('col.data_type')})::INTEGER AS atttypid, "
        f"CASE WHEN col.data_type LIKE 'DECIMAL%' THEN ((col.numeric_precision << 16) | "
        f"col.numeric_scale) + 4 ELSE -1 END AS atttypmod, NOT col.is_nullable AS attnotnull, "
        f"false AS atthasdef, 'x' AS attstorage, '' AS attidentity, '' AS attgenerated, 0 AS attcollation) "
        f"FROM pg_catalog.pg_attribute a JOIN duckdb_columns() col "
        f"ON col.table_oid = a.attrelid AND col.column_index = a.attnum "
        f"WHERE col.schema_name NOT IN {hidden}",
        f"CREATE OR REPLACE VIEW {s}.pg_type AS SELECT oid, typname, 11 AS typnamespace, 10 AS typowner, "
        f"typlen, typlen > 0 AS typbyval, 'b' AS typtype, typcategory, false AS typispreferred, "
        f"true AS typisdefined, ',' AS typdelim, 0 AS typrelid, typelem, typarray, "
        f"typname || 'in' AS typinput, typname || 'out' AS typoutput, typname || 'recv' AS typreceive, "
        f"typname || 'send' AS typsend, 'i' AS typalign, 'p' AS typstorage, false AS typnotnull, "
        f"0 AS typbasetype, -1 AS typtypmod, 0 AS typndims, 0 AS typcollation, "
        f"NULL::VARCHAR AS typdefault, NULL::VARCHAR AS typdefaultbin, NULL AS typacl FROM {s}.types",
        # information_schema as PostgreSQL shows it: the lake's views are base tables,
        # types have PostgreSQL's names, and the duplicates in main and pg_compat are hidden
        f"CREATE OR REPLACE VIEW {s}.information_schema_tables AS SELECT * REPLACE ('lakehose' AS table_catalog, "
        f"CASE WHEN table_schema = '{namespace}' THEN 'BASE TABLE' ELSE table_type END AS table_type) "
        f"FROM information_schema.tables WHERE table_catalog NOT IN ('system', 'temp') "
        f"AND table_schema NOT IN {hidden}",
        f"CREATE OR REPLACE VIEW {s}.information_schema_columns AS SELECT c.* REPLACE ('lakehose' AS table_catalog, "
        f"CASE WHEN ty.typcategory = 'A' THEN 'ARRAY' ELSE ty.shown END AS data_type, ty.typname AS udt_name) "
        f"FROM information_schema.columns c JOIN {s}.types ty ON ty.oid = ({_type_oid_sql('c.data_type')}) "
        f"WHERE c.table_catalog NOT IN ('system', 'temp') AND c.table_schema NOT IN {hidden}",
        f"CREATE OR REPLACE VIEW {s}.information_schema_schemata AS SELECT * REPLACE ('lakehose' AS catalog_name) "
        f"FROM information_schema.schemata WHERE catalog_name NOT IN ('system', 'temp') "
        f"AND schema_name NOT IN {hidden}",
        f"CREATE OR REPLACE VIEW {s}.pg_database AS SELECT 1 AS oid, 'lakehose' AS datname, 10 AS datdba, "
        f"6 AS encoding, 'c' AS datlocprovider, 'C.UTF-8' AS datcollate, 'C.UTF-8' AS datctype, "
        f"NULL::VARCHAR AS daticulocale, NULL::VARCHAR AS daticurules, NULL::VARCHAR[] AS datacl, "
        f"false AS datistemplate, true AS datallowconn, -1 AS datconnlimit, 0 AS dattablespace",
        f"CREATE OR REPLACE VIEW {s}.pg_roles AS SELECT 10 AS oid, 'lakehose' AS rolname, false AS rolsuper, "
        f"false AS rolinherit, false AS rolcreaterole, false AS rolcreatedb, true AS rolcanlogin, "
        f"false AS rolreplication, false AS rolbypassrls, -1 AS rolconnlimit, NULL::TIMESTAMP AS rolvaliduntil, "
        f"NULL::VARCHAR[] AS rolconfig",
        f"CREATE OR REPLACE VIEW {s}.pg_user AS SELECT 'lakehose' AS usename, 10 AS usesysid, "
        f"false AS usecreatedb, false AS usesuper",
        *(f"CREATE OR REPLACE TABLE {s}.{name}({columns})" for name, columns in _EMPTY.items()),
        f"CREATE OR REPLACE VIEW {s}.pg_collation AS SELECT 100 AS oid, 'default' AS collname, "
        f"11 AS collnamespace",
        f"CREATE OR REPLACE VIEW {s}.pg_settings AS SELECT * FROM (VALUES "
        f"('server_version', '{SERVER_VERSION}'), ('server_version_num', '160000'), "
        f"('max_identifier_length', '63'), ('standard_conforming_strings', 'on'), "
        f"('TimeZone', 'UTC'), ('DateStyle', 'ISO, MDY')) AS v(name, setting)",
    ]


def install(con: duckdb.DuckDBPyConnection, namespace: str) -> None:
    """Create (or refresh) the ``pg_compat`` schema; done once per process, before serving."""
    for statement in _statements(namespace):
        con.execute(statement)
