#!/usr/bin/env python3
"""Run SQL statements through chdb (in-process current ClickHouse) to check the current dialect.

Usage:
    deploy/chdb/run_sql.py [FILE...] [--parse-only] [--query SQL]... [--format FMT] < statements.sql

Statements are read from the FILEs in order, or from stdin when no FILE is given.
Splitting rule: a statement ends at a line whose last non-blank character is ';'
(so a line holding only ';' also ends one). Lines starting with '--' (after
leading blanks) are ignored. A ';' in the middle of a line does not split, and a
string literal must not end a line with ';'. Text after the last ';' counts as a
final statement.

All statements run in one chdb Session on a temporary directory, which is removed
at exit. On the first failure: prints the statement number, its first line and
the chdb error to stderr, exits 1. On success prints
"chdb <version>: N statements OK" and exits 0.

--report runs every statement (a failure does not stop the others) and prints one
JSON object per statement: {"n", "first_line", "ok", "code", "error"}; it exits 0
unless chdb itself cannot start. --config-file passes a ClickHouse configuration
file to the engine (e.g. one that grants the default user access_management, so
that access-control statements get past the privilege check).

--parse-only checks the statements with EXPLAIN AST instead of running them:
for SQL that chdb cannot execute, e.g. deploy/clickhouse/grants.sql (chdb has no
access management). Error positions then include the 12-character
"EXPLAIN AST " prefix.

Each --query then runs in the same session (after the statements) and its
result is printed in --format (default PrettyCompact); a failing query exits 1.
"""

import argparse
import sys
import tempfile


def split_statements(text):
    """Split SQL text into statements (see the module doc for the rule)."""
    stmts, buf = [], []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue
        stripped = line.rstrip()
        if stripped.endswith(";"):
            buf.append(stripped[:-1])
            stmt = "\n".join(buf).strip()
            if stmt:
                stmts.append(stmt)
            buf = []
        else:
            buf.append(line)
    tail = "\n".join(buf).strip()
    if tail:
        stmts.append(tail)
    return stmts


def first_line(stmt):
    return next((ln.strip() for ln in stmt.splitlines() if ln.strip()), "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="SQL files (default: stdin)")
    ap.add_argument("--query", action="append", default=[], help="query to run after the statements (repeatable)")
    ap.add_argument("--parse-only", action="store_true", help="only parse the statements (EXPLAIN AST)")
    ap.add_argument("--format", default="PrettyCompact", help="output format for --query results")
    ap.add_argument("--report", action="store_true", help="run every statement, print one JSON line each")
    ap.add_argument("--config-file", default="", help="ClickHouse configuration file for the engine")
    args = ap.parse_args()

    import chdb
    from chdb import session as chs

    if args.files:
        text = ""
        for path in args.files:
            with open(path, encoding="utf-8") as f:
                text += f.read() + "\n"
    elif sys.stdin is None or (sys.stdin.isatty() and args.query):
        text = ""  # only --query given interactively: don't wait for stdin
    else:
        text = sys.stdin.read()
    stmts = split_statements(text)

    if args.report:
        return report(stmts, args.config_file)

    with tempfile.TemporaryDirectory(prefix="aw-chdb-") as tmp:
        sess = chs.Session(tmp)
        try:
            for i, stmt in enumerate(stmts, 1):
                try:
                    sess.query("EXPLAIN AST " + stmt if args.parse_only else stmt)
                except Exception as e:  # chdb raises ChdbError (a RuntimeError)
                    print(f"statement {i} failed: {first_line(stmt)}", file=sys.stderr)
                    print(f"chdb error: {str(e).strip()}", file=sys.stderr)
                    return 1
            what = "statements parsed OK" if args.parse_only else "statements OK"
            print(f"chdb {chdb.__version__}: {len(stmts)} {what}")
            for q in args.query:
                try:
                    res = sess.query(q, args.format)
                except Exception as e:
                    print(f"query failed: {first_line(q)}", file=sys.stderr)
                    print(f"chdb error: {str(e).strip()}", file=sys.stderr)
                    return 1
                out = str(res)
                sys.stdout.write(out if out.endswith("\n") or not out else out + "\n")
        finally:
            sess.close()
    return 0


def report(stmts, config_file):
    """Run every statement in one chdb connection; one JSON line each."""
    import json
    import re

    import chdb

    with tempfile.TemporaryDirectory(prefix="aw-chdb-") as tmp:
        url = "file:" + tmp + "/db"
        if config_file:
            url += "?config-file=" + config_file
        conn = chdb.connect(url)
        cur = conn.cursor()
        try:
            for i, stmt in enumerate(stmts, 1):
                r = {"n": i, "first_line": first_line(stmt), "ok": True, "code": 0, "error": ""}
                try:
                    cur.execute(stmt)
                except Exception as e:  # chdb raises a RuntimeError subclass
                    msg = str(e).strip()
                    m = re.search(r"Code: (\d+)", msg)
                    r.update(ok=False, code=int(m.group(1)) if m else -1, error=msg[:1000])
                print(json.dumps(r))
        finally:
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
