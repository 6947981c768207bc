#!/usr/bin/env python3
"""Run a differential job through chdb (in-process current ClickHouse).

Used by the Go differential test (deploy/difftest): it captures every
statement the product sends to the ClickHouse 18.16 test server, with the
data each ran on, and asks this script to run the same statements on the
same data in current ClickHouse.

Input (stdin, JSON):
  {"cases": [{"name": str,
              "setup": [sql, ...],                        # DDL: the current-dialect migrations
              "loads": [{"sql": "INSERT ... FORMAT JSONEachRow", "data": str}],
              "queries": [{"id": str, "sql": str}]}]}
Output (stdout, JSON):
  {"version": str,
   "cases": [{"name": str, "error": str,                  # error: setup or load failed
              "results": [{"id": str, "error": str, "meta": [[name, type]], "data": [[...]]}]}]}

All cases run in one chdb Session on a temporary directory (removed at exit);
each case should use its own database. A failing statement does not stop the
others: its error is reported in its place.
"""

import json
import sys
import tempfile


def run(session, sql, fmt="JSONCompact"):
    res = session.query(sql, fmt)
    # chdb returns a result object; errors raise.
    return res.bytes() if hasattr(res, "bytes") else bytes(res)


def main():
    job = json.load(sys.stdin)
    import chdb
    from chdb import session as chs

    out = {"version": "", "cases": []}
    with tempfile.TemporaryDirectory(prefix="aw-chdb-diff-") as path:
        s = chs.Session(path)
        try:
            out["version"] = run(s, "SELECT version()", "TSV").decode().strip()
            for case in job["cases"]:
                c = {"name": case["name"], "error": "", "results": []}
                out["cases"].append(c)
                try:
                    for sql in case.get("setup", []):
                        run(s, sql, "TSV")
                    for ld in case.get("loads", []):
                        if ld.get("data"):
                            run(s, ld["sql"] + "\n" + ld["data"], "TSV")
                except Exception as e:  # noqa: BLE001 - reported to the Go test
                    c["error"] = "%s: %s" % (type(e).__name__, str(e).strip()[:2000])
                    continue
                for q in case.get("queries", []):
                    r = {"id": q["id"], "error": "", "meta": [], "data": []}
                    try:
                        raw = run(s, q["sql"])
                        if raw.strip():
                            doc = json.loads(raw)
                            r["meta"] = [[m["name"], m["type"]] for m in doc.get("meta", [])]
                            r["data"] = doc.get("data", [])
                    except Exception as e:  # noqa: BLE001
                        r["error"] = "%s: %s" % (type(e).__name__, str(e).strip()[:2000])
                    c["results"].append(r)
        finally:
            s.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
