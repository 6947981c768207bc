-- auditwatch users for CURRENT ClickHouse (22.x and later: SQL-driven access control).
--
-- THIS IS A TEMPLATE. Do not run it directly: deploy/clickhouse/grants.sh fills in the
-- double-braced placeholders (database, client hosts, password hashes) from
-- the environment and refuses to run when a password is missing:
--
--   AW_INGEST_PASSWORD=… AW_DETECT_PASSWORD=… … deploy/clickhouse/grants.sh \
--     | clickhouse-client --multiquery --user admin --password …
--
-- Passwords reach the server only as SHA-256 hashes (IDENTIFIED WITH sha256_hash),
-- so the clear text is in no query log. Run as a user with access_management = 1
-- (or GRANT OPTION on these rights). Re-running is safe: users are replaced with
-- exactly these rights, so rights added by hand are removed.
--
-- ClickHouse 18.16 (no SQL access control) gets the same users from
-- deploy/clickhouse/users.d/auditwatch.xml, with coarser rights: see docs/security.md.
--
-- Who does what (each auditwatch command connects as its component's user,
-- clickhouse.users.<component> / AUDITWATCH_CLICKHOUSE_<COMPONENT>_USERNAME):
--   aw_ingest     auditwatch ingest
--   aw_detect     auditwatch detect, alerts, summary, rules test against the server
--   aw_rules      the SQL of `sql` rules (run by detect on a connection of its own)
--   aw_keys       auditwatch keys consume / import / list
--   aw_retention  auditwatch retention [--every]: the only user that may drop partitions
--   aw_migrate    auditwatch migrate (and --migrate of ingest, detect, keys consume)
--   aw_analyst    people: read-only SQL

CREATE DATABASE IF NOT EXISTS {{DB}};

-- The single shared writer of earlier versions is retired.
DROP USER IF EXISTS aw_writer;

-- Settings profiles ----------------------------------------------------------

-- sql rules: read-only; readonly = 2 lets detect pass its per-query limits
-- (detect.sql_rules) as settings, and the constraints stop a rule's own
-- SETTINGS clause from raising them above these (the detect.sql_rules
-- defaults; raise both together). 18.16 has no constraints: see docs/security.md.
CREATE SETTINGS PROFILE OR REPLACE aw_rules_profile SETTINGS
    readonly = 2 CONST,
    max_execution_time = 30 MAX 30,
    max_memory_usage = 1073741824 MAX 1073741824,
    max_rows_to_read = 500000000 MAX 500000000,
    max_result_rows = 100000 MAX 100000;

-- People: read-only, no settings changes at all, 60 s per query.
CREATE SETTINGS PROFILE OR REPLACE aw_analyst_profile SETTINGS
    readonly = 1 CONST,
    max_execution_time = 60 MAX 60;

-- Users ----------------------------------------------------------------------

CREATE USER OR REPLACE aw_ingest IDENTIFIED WITH sha256_hash BY '{{INGEST_SHA256}}'
    HOST {{HOSTS}} DEFAULT DATABASE {{DB}};
CREATE USER OR REPLACE aw_detect IDENTIFIED WITH sha256_hash BY '{{DETECT_SHA256}}'
    HOST {{HOSTS}} DEFAULT DATABASE {{DB}};
CREATE USER OR REPLACE aw_rules IDENTIFIED WITH sha256_hash BY '{{RULES_SHA256}}'
    HOST {{HOSTS}} DEFAULT DATABASE {{DB}} SETTINGS PROFILE 'aw_rules_profile';
CREATE USER OR REPLACE aw_keys IDENTIFIED WITH sha256_hash BY '{{KEYS_SHA256}}'
    HOST {{HOSTS}} DEFAULT DATABASE {{DB}};
CREATE USER OR REPLACE aw_retention IDENTIFIED WITH sha256_hash BY '{{RETENTION_SHA256}}'
    HOST {{HOSTS}} DEFAULT DATABASE {{DB}};
-- auditwatch migrate connects without a session database (the database may
-- not exist yet on other setups); DEFAULT DATABASE gives it one it may use.
CREATE USER OR REPLACE aw_migrate IDENTIFIED WITH sha256_hash BY '{{MIGRATE_SHA256}}'
    HOST {{HOSTS}} DEFAULT DATABASE {{DB}};
CREATE USER OR REPLACE aw_analyst IDENTIFIED WITH sha256_hash BY '{{ANALYST_SHA256}}'
    HOST {{ANALYST_HOSTS}} DEFAULT DATABASE {{DB}} SETTINGS PROFILE 'aw_analyst_profile';

-- Grants ---------------------------------------------------------------------

-- ingest: writes the log, its dead letters and its progress; reads the log and
-- the dead letters back to skip redelivered messages. INSERT on key_usage: the
-- materialized view key_usage_mv writes the rollup on every access_log insert,
-- and servers that run views with the inserting user's rights (SQL SECURITY
-- INVOKER, or before 24.4) check it there.
GRANT INSERT ON {{DB}}.access_log TO aw_ingest;
GRANT INSERT ON {{DB}}.ingest_errors TO aw_ingest;
GRANT INSERT ON {{DB}}.ingest_progress TO aw_ingest;
GRANT INSERT ON {{DB}}.key_usage TO aw_ingest;
GRANT SELECT ON {{DB}}.access_log TO aw_ingest;
GRANT SELECT ON {{DB}}.ingest_errors TO aw_ingest;

-- detect (rules, alerts, summaries): reads the log, the rollup, the registry,
-- the ingest watermarks and its own records; writes findings, rule runs,
-- delivery records, silences and Slack triage actions. No UPDATE/DELETE: silences expire by a newer
-- row (ReplacingMergeTree), findings and deliveries are append-only.
GRANT SELECT ON {{DB}}.access_log TO aw_detect;
GRANT SELECT ON {{DB}}.key_usage TO aw_detect;
GRANT SELECT ON {{DB}}.keys TO aw_detect;
GRANT SELECT ON {{DB}}.key_events TO aw_detect;
GRANT SELECT ON {{DB}}.ingest_progress TO aw_detect;
GRANT SELECT, INSERT ON {{DB}}.findings TO aw_detect;
GRANT SELECT, INSERT ON {{DB}}.rule_runs TO aw_detect;
GRANT SELECT, INSERT ON {{DB}}.alert_deliveries TO aw_detect;
GRANT SELECT, INSERT ON {{DB}}.silences TO aw_detect;
GRANT SELECT, INSERT ON {{DB}}.alert_actions TO aw_detect;

-- sql rules: read the log, the rollup and the registry; nothing else.
GRANT SELECT ON {{DB}}.access_log TO aw_rules;
GRANT SELECT ON {{DB}}.key_usage TO aw_rules;
GRANT SELECT ON {{DB}}.keys TO aw_rules;
GRANT SELECT ON {{DB}}.key_events TO aw_rules;

-- keys: the registry and its lifecycle events; undecodable events are
-- dead-lettered to ingest_errors.
GRANT SELECT, INSERT ON {{DB}}.keys TO aw_keys;
GRANT SELECT, INSERT ON {{DB}}.key_events TO aw_keys;
GRANT SELECT, INSERT ON {{DB}}.ingest_errors TO aw_keys;

-- retention: lists partitions and drops expired ones, on the tables with a
-- retention setting only (never alert_deliveries, silences, keys, key_events).
-- ClickHouse checks ALTER DELETE for DROP PARTITION, and the same right allows
-- ALTER TABLE … DELETE mutations on these tables: retention is the one
-- component that can remove rows, which is why it runs alone, as its own job.
GRANT SELECT ON system.parts TO aw_retention;
GRANT ALTER DELETE ON {{DB}}.access_log TO aw_retention;
GRANT ALTER DELETE ON {{DB}}.ingest_errors TO aw_retention;
GRANT ALTER DELETE ON {{DB}}.ingest_progress TO aw_retention;
GRANT ALTER DELETE ON {{DB}}.key_usage TO aw_retention;
GRANT ALTER DELETE ON {{DB}}.findings TO aw_retention;
GRANT ALTER DELETE ON {{DB}}.rule_runs TO aw_retention;

-- migrate: owns the schema of {{DB}} (tables, views, columns, comments, the
-- schema_migrations record) and nothing outside it. Views it creates run with
-- its rights (SQL SECURITY DEFINER, the default for materialized views).
GRANT CREATE DATABASE ON {{DB}}.* TO aw_migrate;
GRANT CREATE TABLE, CREATE VIEW, ALTER, DROP TABLE, DROP VIEW, SELECT, INSERT, SHOW ON {{DB}}.* TO aw_migrate;
-- The table engines of the schema: servers with
-- access_control_improvements.table_engines_require_grant = true (the
-- built-in default; the packaged config.xml sets false) refuse CREATE TABLE
-- without them.
GRANT TABLE ENGINE ON MergeTree TO aw_migrate;
GRANT TABLE ENGINE ON ReplacingMergeTree TO aw_migrate;
GRANT TABLE ENGINE ON AggregatingMergeTree TO aw_migrate;

-- analysts: read everything of auditwatch, nothing else.
GRANT SELECT ON {{DB}}.* TO aw_analyst;
