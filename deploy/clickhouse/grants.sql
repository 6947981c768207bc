-- auditwatch users for CURRENT ClickHouse (22.x and later, SQL-driven access control).
--
-- ClickHouse 18.16 (the Debian package used by the tests) has no CREATE USER / GRANT;
-- there the same users come from deploy/clickhouse/users.d/auditwatch.xml, which
-- deploy/services/clickhouse.sh installs next to the server's users.xml.
--
-- Run as an administrator whose user has access_management = 1, e.g.
--   clickhouse-client --multiquery < deploy/clickhouse/grants.sql
-- The passwords below are the dev ones; replace them in production (or use
-- IDENTIFIED WITH sha256_hash BY '<hex>' so the clear text never reaches the server logs).
--
-- Differences from the 18.16 XML file:
--   * aw_writer is limited to INSERT, SELECT on auditwatch.* (the XML user is not
--     restricted to a database, because 18.16 has no per-privilege grants and the
--     tests create scratch databases). Schema changes are done by the migration user.
--   * aw_analyst: SELECT on auditwatch.* only, readonly = 1 and max_execution_time = 60
--     through a settings profile (same as the XML profile).
--   * No HOST clause (any host); add e.g. HOST IP '10.0.0.0/8' to narrow it in production.
--     The XML users accept only localhost.

CREATE DATABASE IF NOT EXISTS auditwatch;

CREATE SETTINGS PROFILE IF NOT EXISTS aw_analyst_profile
    SETTINGS readonly = 1, max_execution_time = 60;

CREATE USER IF NOT EXISTS aw_writer
    IDENTIFIED WITH sha256_password BY 'aw_writer_dev';

CREATE USER IF NOT EXISTS aw_analyst
    IDENTIFIED WITH sha256_password BY 'aw_analyst_dev'
    SETTINGS PROFILE 'aw_analyst_profile';

GRANT INSERT, SELECT ON auditwatch.* TO aw_writer;
-- Retention drops expired daily partitions (ALTER TABLE … DROP PARTITION).
GRANT ALTER DELETE ON auditwatch.* TO aw_writer;
-- system.parts is read to find those partitions.
GRANT SELECT ON system.parts TO aw_writer;
GRANT SELECT ON auditwatch.* TO aw_analyst;
