#!/usr/bin/env bash
# Render deploy/clickhouse/grants.sql (current ClickHouse) with this deployment's
# database, client networks and password hashes, and print it or apply it.
#
# Usage:
#   deploy/clickhouse/grants.sh                 # print the SQL (hashes only, no passwords)
#   deploy/clickhouse/grants.sh | clickhouse-client --multiquery --user <admin> --password <…>
#   AW_GRANTS_APPLY=1 deploy/clickhouse/grants.sh   # apply with clickhouse-client as
#                                               # $CLICKHOUSE_USER / $CLICKHOUSE_PASSWORD on
#                                               # 127.0.0.1 (the ClickHouse image's
#                                               # /docker-entrypoint-initdb.d does this)
#
# Environment (a missing password is an error; nothing is printed or applied):
#   AW_INGEST_PASSWORD AW_DETECT_PASSWORD AW_RULES_PASSWORD AW_KEYS_PASSWORD
#   AW_RETENTION_PASSWORD AW_MIGRATE_PASSWORD AW_ANALYST_PASSWORD
#                         each may instead be given as a file: AW_<USER>_PASSWORD_FILE
#   AW_CLICKHOUSE_DATABASE        database (default auditwatch)
#   AW_CLICKHOUSE_CLIENT_HOSTS    where the auditwatch components connect from, as a
#                                 CREATE USER … HOST clause (default LOCAL; e.g.
#                                 "IP '10.20.0.0/16'" or "IP '10.0.0.0/8', NAME 'ingest1'")
#   AW_CLICKHOUSE_ANALYST_HOSTS   the same for aw_analyst (default: AW_CLICKHOUSE_CLIENT_HOSTS)
#   AW_GRANTS_TEMPLATE            template path (default: grants.sql next to this script)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="${AW_GRANTS_TEMPLATE:-$HERE/grants.sql}"
DB="${AW_CLICKHOUSE_DATABASE:-auditwatch}"
HOSTS="${AW_CLICKHOUSE_CLIENT_HOSTS:-LOCAL}"
ANALYST_HOSTS="${AW_CLICKHOUSE_ANALYST_HOSTS:-$HOSTS}"

die() { echo "grants.sh: $*" >&2; exit 1; }

[[ "$DB" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "AW_CLICKHOUSE_DATABASE: not a plain identifier"
[[ -r "$TEMPLATE" ]] || die "cannot read the template $TEMPLATE"

sql="$(cat "$TEMPLATE")"
missing=()
for user in INGEST DETECT RULES KEYS RETENTION MIGRATE ANALYST; do
    var="AW_${user}_PASSWORD"
    file_var="${var}_FILE"
    pw="${!var:-}"
    if [[ -z "$pw" && -n "${!file_var:-}" ]]; then
        [[ -r "${!file_var}" ]] || die "$file_var: cannot read the file"
        pw="$(cat "${!file_var}")"
        pw="${pw%$'\n'}"
        pw="${pw%$'\r'}"
    fi
    if [[ -z "$pw" ]]; then
        missing+=("$var")
        continue
    fi
    hash="$(printf '%s' "$pw" | sha256sum | cut -d' ' -f1)"
    sql="${sql//"{{${user}_SHA256}}"/$hash}"
done
((${#missing[@]} == 0)) || die "set ${missing[*]} (or the *_FILE variants); no users created"
unset pw

sql="${sql//"{{DB}}"/$DB}"
sql="${sql//"{{ANALYST_HOSTS}}"/$ANALYST_HOSTS}"
sql="${sql//"{{HOSTS}}"/$HOSTS}"
if [[ "$sql" =~ \{\{[A-Z_0-9]+\}\} ]]; then
    die "the template still has the placeholder ${BASH_REMATCH[0]}"
fi

if [[ "${AW_GRANTS_APPLY:-}" == 1 ]]; then
    [[ -n "${CLICKHOUSE_USER:-}" ]] || die "AW_GRANTS_APPLY=1 needs CLICKHOUSE_USER (and CLICKHOUSE_PASSWORD)"
    printf '%s\n' "$sql" | clickhouse-client --host 127.0.0.1 --multiquery \
        --user "$CLICKHOUSE_USER" --password "${CLICKHOUSE_PASSWORD:-}"
    echo "grants.sh: users aw_ingest, aw_detect, aw_rules, aw_keys, aw_retention, aw_migrate, aw_analyst created on database $DB" >&2
else
    printf '%s\n' "$sql"
fi
