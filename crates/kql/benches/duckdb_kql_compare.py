"""The KQL side-by-side (docs/benchmarks.md, "KQL engine"): the seed query and dfcsync's own
sync query, each run RUNS times in the kql crate's engine and in duckdb-kql (PyPI) on the
same data set, with the two engines' results compared as multisets of rows.

    cargo run --release -p kql --example gen_bench_data -- DIR --ndjson
    python3 crates/kql/benches/duckdb_kql_compare.py DIR [RUNS]

The kql side is `examples/run_queries.rs` (built and run with `cargo run --release`, or the
binary named by KQL_RUN_QUERIES), loading DIR/NAME.json; duckdb-kql loads DIR/NAME.ndjson
into typed tables (JSON for dynamic columns). `now()` is 2026-11-27T12:00:00Z in both.

The queries: `tests/data/seed-query.kql` (the seed's, verbatim), `benches/sync-query.kql`
(what `dfcsync query` prints with the default policy; a dfcsync test keeps the copy current)
and `benches/change-feed-query.kql` (dfcsync's change-feed read, also kept current by a
dfcsync test), with `ingestion_time()` read from the data set's `IngestionTime` column in both
engines (see `query_text`).

Timings: the kql engine's `kql::run` (the result materialised as rows; run_queries allocates
with mimalloc, run with MIMALLOC_PURGE_DELAY=-1 unless the environment sets it); duckdb-kql's query
with its result materialised in a DuckDB table (`CREATE TABLE … AS`), so that neither side
pays for converting its result to something else; fetching duckdb's rows into Python, which
the comparison needs, is timed apart. Exit status 1 when the results differ or a query fails
in either engine (the failure is printed, not hidden)."""

import collections
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb_kql

HERE = os.path.dirname(os.path.abspath(__file__))
KQL_CRATE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(KQL_CRATE))
QUERY_FILES = {
    "seed": os.path.join(KQL_CRATE, "tests", "data", "seed-query.kql"),
    "sync": os.path.join(HERE, "sync-query.kql"),
    "change-feed": os.path.join(HERE, "change-feed-query.kql"),
}


def query_text(name):
    """A query's text as both engines run it. The change-feed query reads each row's
    ingestion time; duckdb-kql has no `ingestion_time()`, so both engines read the data set's
    `IngestionTime` column instead (the time `gen_bench_data` gives each row: 2 to 10 minutes
    after its TimeGenerated)."""
    with open(QUERY_FILES[name]) as f:
        text = f.read()
    if name == "change-feed":
        assert "ingestion_time()" in text, "the change-feed query no longer reads ingestion_time()"
        text = text.replace("ingestion_time()", "IngestionTime")
    return text


QUERIES = {name: query_text(name) for name in QUERY_FILES}
NOW = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)

TS = "TIMESTAMP"
INCIDENT_COLS = {
    "TenantId": "VARCHAR", "TimeGenerated": TS, "IncidentName": "VARCHAR", "Title": "VARCHAR",
    "Description": "VARCHAR", "Severity": "VARCHAR", "Status": "VARCHAR", "Classification": "VARCHAR",
    "ClassificationComment": "VARCHAR", "ClassificationReason": "VARCHAR",
    "Owner": "JSON", "ProviderName": "VARCHAR", "ProviderIncidentId": "VARCHAR",
    "FirstActivityTime": TS, "LastActivityTime": TS, "FirstModifiedTime": TS, "LastModifiedTime": TS,
    "CreatedTime": TS, "ClosedTime": TS, "IncidentNumber": "INTEGER", "AlertIds": "JSON",
    "Comments": "JSON", "Labels": "JSON", "IncidentUrl": "VARCHAR", "AdditionalData": "JSON",
    "ModifiedBy": "VARCHAR", "SourceSystem": "VARCHAR", "Type": "VARCHAR", "IngestionTime": TS,
}
ALERT_COLS = {
    "TenantId": "VARCHAR", "TimeGenerated": TS, "DisplayName": "VARCHAR", "AlertName": "VARCHAR",
    "AlertSeverity": "VARCHAR", "Description": "VARCHAR", "ProviderName": "VARCHAR",
    "VendorName": "VARCHAR", "VendorOriginalId": "VARCHAR", "SystemAlertId": "VARCHAR",
    "ResourceId": "VARCHAR", "ConfidenceScore": "DOUBLE", "IsIncident": "BOOLEAN", "StartTime": TS,
    "EndTime": TS, "ExtendedProperties": "VARCHAR", "Entities": "VARCHAR", "ProductName": "VARCHAR",
    "AlertLink": "VARCHAR", "Status": "VARCHAR", "CompromisedEntity": "VARCHAR", "Tactics": "VARCHAR",
    "Type": "VARCHAR", "IngestionTime": TS,
}


def run_kql(d, runs, out):
    """Runs each query in the kql engine, each in a process of its own (so that a query's
    peak memory is not the previous one's leftovers); returns ({name: [ms…]}, {name: rows},
    {name: peak MiB}, MiB of the loaded tables)."""
    times, rows, peak, loaded = collections.defaultdict(list), {}, {}, 0
    exe = os.environ.get("KQL_RUN_QUERIES")
    for name, text in QUERIES.items():
        path = os.path.join(out, f"{name}.kql")
        with open(path, "w") as f:
            f.write(text)
        args = [d, str(runs), out, f"{name}={path}"]
        cmd = [exe] + args if exe else [
            "cargo", "run", "--quiet", "--release", "-p", "kql", "--example", "run_queries",
            "--"] + args
        # run_queries allocates with mimalloc; memory a run frees is kept for the next run
        # instead of being returned to the system and faulted in again (as DuckDB's buffer
        # manager keeps its memory): mimalloc's documented MIMALLOC_PURGE_DELAY=-1.
        env = dict(os.environ, MIMALLOC_PURGE_DELAY=os.environ.get("MIMALLOC_PURGE_DELAY", "-1"))
        p = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, check=False, text=True, env=env)
        if p.returncode != 0:
            sys.exit(f"kql: run_queries failed with status {p.returncode}")
        for line in p.stdout.splitlines():
            o = json.loads(line)
            if "loaded_rss_mib" in o:
                loaded = o["loaded_rss_mib"]
            elif "peak_rss_mib" in o:
                peak[o["query"]] = o["peak_rss_mib"]
            else:
                times[o["query"]].append(o["ms"])
                rows[o["query"]] = o["rows"]
    return times, rows, peak, loaded


def norm_time(s):
    """An ISO 8601 UTC text (up to 7 fractional digits, `Z`) as microseconds text."""
    s = s.rstrip("Z")
    head, _, frac = s.partition(".")
    return f"{head}.{(frac + '000000')[:6]}"


def norm_json(text):
    """A dynamic value as canonical JSON text; a dynamic string as the string itself (the
    kql engine writes a dynamic string bare, as Log Analytics does; duckdb-kql may type the
    same column VARCHAR)."""
    try:
        v = json.loads(text)
    except ValueError:
        return text
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def kql_rows(path):
    """The kql engine's result (a Log Analytics response) as normalised rows, by column name."""
    with open(path) as f:
        t = json.load(f)["tables"][0]
    cols = [c["name"] for c in t["columns"]]
    types = [c["type"] for c in t["columns"]]

    def cell(v, ty):
        if v is None:
            return None
        if ty == "datetime":
            return norm_time(v)
        if ty == "dynamic":
            # A null dynamic goes on the wire as "" (as Log Analytics writes it).
            if v == "":
                return None
            return norm_json(v) if isinstance(v, str) else norm_json(json.dumps(v))
        if ty == "string":
            return v
        if ty in ("int", "long"):
            return int(v)
        return v

    return cols, [tuple(cell(v, ty) for v, ty in zip(r, types)) for r in t["rows"]]


def duck_rows(rel_cols, rel_types, rows):
    """duckdb's rows, normalised like kql_rows. A NULL string is read as "": Kusto's string
    type has no null (a missing string is the empty string, and Log Analytics sends "")."""
    def cell(v, ty):
        if ty == "VARCHAR" and v is None:
            return ""
        if v is None:
            return None
        if isinstance(v, datetime.datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%S.%f")
        if ty == "JSON":
            return norm_json(v)
        return v

    return [tuple(cell(v, ty) for v, ty in zip(r, rel_types)) for r in rows]


def compare(name, kcols, krows, dcols, drows):
    """Compares two results as multisets of rows, columns matched by name."""
    if sorted(kcols) != sorted(dcols):
        print(f"{name}: DIFFERENT columns: kql {kcols}, duckdb-kql {dcols}")
        return False
    order = [dcols.index(c) for c in kcols]
    drows = [tuple(r[i] for i in order) for r in drows]
    k, d = collections.Counter(krows), collections.Counter(drows)
    if k == d:
        print(f"{name}: SAME {len(krows)} rows in both engines (compared as multisets)")
        return True
    only_k, only_d = k - d, d - k
    print(f"{name}: DIFFERENT: {sum(only_k.values())} rows only in kql, "
          f"{sum(only_d.values())} only in duckdb-kql (of {len(krows)} / {len(drows)})")
    for r in list(only_k)[:3]:
        print(f"  kql only:    {dict(zip(kcols, r))}")
    for r in list(only_d)[:3]:
        print(f"  duckdb only: {dict(zip(kcols, r))}")
    return False


def main():
    d = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    # The kql engine's results (hundreds of MB for the sync query), removed at the end.
    with tempfile.TemporaryDirectory(prefix="kql-compare-") as out:
        ok = compare_all(d, runs, out)
    sys.exit(0 if ok else 1)


def compare_all(d, runs, out):
    """Runs everything; True when every query ran in both engines with the same rows."""
    print(f"kql engine: {runs} runs of each query (examples/run_queries.rs)", file=sys.stderr)
    ktimes, krows_n, kpeak, kloaded = run_kql(d, runs, out)

    con = duckdb_kql.connect()
    for name, cols in (("SecurityIncident", INCIDENT_COLS), ("SecurityAlert", ALERT_COLS)):
        spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"
        t0 = time.time()
        con.sql(f"CREATE TABLE {name} AS SELECT * FROM read_json('{d}/{name}.ndjson', "
                f"format='newline_delimited', columns={spec})")
        print(f"duckdb-kql: loaded {name} in {time.time() - t0:.1f} s", file=sys.stderr)
    threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    version = con.sql("SELECT version()").fetchall()[0][0]

    ok = True
    summary = []
    for name, text in QUERIES.items():
        dtimes, fetch_ms, result = [], None, None
        try:
            for i in range(runs):
                con.sql("DROP TABLE IF EXISTS kql_result")
                t0 = time.time()
                duckdb_kql.query(con, text, query_now=NOW).create("kql_result")
                dtimes.append((time.time() - t0) * 1e3)
            rel = con.table("kql_result")
            t0 = time.time()
            rows = rel.fetchall()
            fetch_ms = (time.time() - t0) * 1e3
            result = (rel.columns, [str(t) for t in rel.types], rows)
        except Exception as e:  # noqa: BLE001 — report whatever duckdb-kql refuses, exactly
            print(f"{name}: duckdb-kql FAILED: {type(e).__name__}: {e}")
            ok = False
        kcols, krows = kql_rows(os.path.join(out, f"{name}.json"))
        if result is not None:
            dcols, dtypes, rows = result
            same = compare(name, kcols, krows, dcols, duck_rows(dcols, dtypes, rows))
            ok = ok and same
            del rows, result
        kmed = statistics.median(ktimes[name])
        dmed = statistics.median(dtimes) if dtimes else None
        summary.append((name, krows_n[name], ktimes[name], kmed, dtimes, dmed, fetch_ms))

    print(f"\nduckdb-kql {duckdb_kql.__version__ if hasattr(duckdb_kql, '__version__') else ''} "
          f"on DuckDB {version}, threads={threads}; kql engine on {os.cpu_count()} threads")
    for name, n, kt, kmed, dt, dmed, fetch in summary:
        print(f"{name}: {n} rows")
        print(f"  kql        runs ms: {', '.join(f'{t:.0f}' for t in kt)}; median {kmed:.0f} ms")
        if dt:
            print(f"  duckdb-kql runs ms: {', '.join(f'{t:.0f}' for t in dt)}; median {dmed:.0f} ms"
                  f" (+ {fetch:.0f} ms to fetch the rows into Python, not counted)")
            print(f"  ratio kql / duckdb-kql (medians; at or under 1.0: kql at or faster): "
                  f"{kmed / dmed:.2f}")
        if name in kpeak:
            print(f"  kql peak RSS {kpeak[name]} MiB while it ran = "
                  f"{kpeak[name] / kloaded:.2f} x the loaded tables' {kloaded} MiB")
    print(f"peak RSS: this Python process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    return ok


if __name__ == "__main__":
    main()
