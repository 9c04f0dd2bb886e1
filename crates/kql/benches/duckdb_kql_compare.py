"""Runs the seed query with duckdb-kql (PyPI) on the benchmark data set written by
`cargo run --release -p kql --example gen_bench_data -- DIR --ndjson`, for comparison with
the kql crate's benchmark. Usage: python3 duckdb_kql_compare.py DIR [RUNS]"""

import datetime
import resource
import sys
import time

import duckdb_kql

d = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
con = duckdb_kql.connect()

TS = "TIMESTAMP"
incident_cols = {
    "TenantId": "VARCHAR", "TimeGenerated": TS, "IncidentName": "VARCHAR", "Title": "VARCHAR",
    "Description": "VARCHAR", "Severity": "VARCHAR", "Status": "VARCHAR", "Classification": "VARCHAR",
    "Owner": "JSON", "ProviderName": "VARCHAR", "ProviderIncidentId": "VARCHAR",
    "FirstActivityTime": TS, "LastActivityTime": TS, "FirstModifiedTime": TS, "LastModifiedTime": TS,
    "CreatedTime": TS, "ClosedTime": TS, "IncidentNumber": "INTEGER", "AlertIds": "JSON",
    "Labels": "JSON", "IncidentUrl": "VARCHAR", "AdditionalData": "JSON", "ModifiedBy": "VARCHAR",
    "SourceSystem": "VARCHAR", "Type": "VARCHAR",
}
alert_cols = {
    "TenantId": "VARCHAR", "TimeGenerated": TS, "DisplayName": "VARCHAR", "AlertName": "VARCHAR",
    "AlertSeverity": "VARCHAR", "Description": "VARCHAR", "ProviderName": "VARCHAR",
    "VendorName": "VARCHAR", "VendorOriginalId": "VARCHAR", "SystemAlertId": "VARCHAR",
    "ResourceId": "VARCHAR", "ConfidenceScore": "DOUBLE", "IsIncident": "BOOLEAN", "StartTime": TS,
    "EndTime": TS, "ExtendedProperties": "VARCHAR", "Entities": "VARCHAR", "ProductName": "VARCHAR",
    "AlertLink": "VARCHAR", "Status": "VARCHAR", "CompromisedEntity": "VARCHAR", "Tactics": "VARCHAR",
    "Type": "VARCHAR",
}


def load(name, cols):
    spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"
    t0 = time.time()
    con.sql(f"CREATE TABLE {name} AS SELECT * FROM read_json('{d}/{name}.ndjson', format='newline_delimited', columns={spec})")
    print(f"loaded {name} in {time.time() - t0:.1f} s", file=sys.stderr)


load("SecurityIncident", incident_cols)
load("SecurityAlert", alert_cols)
query = open(__file__.rsplit("/", 2)[0] + "/tests/data/seed-query.kql").read()
now = datetime.datetime(2026, 11, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)
threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
for i in range(runs):
    t0 = time.time()
    rows = duckdb_kql.query(con, query, query_now=now).fetchall()
    print(f"run {i}: {(time.time() - t0) * 1e3:.0f} ms, {len(rows)} rows (duckdb threads={threads})")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
