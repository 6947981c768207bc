-- Bounded rules: each run records the hash of the rule file it ran, so a
-- change of the rules (an exception added, a threshold raised) is visible in
-- rule_runs, and how many findings the per-run cap dropped.
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}rule_hash String AFTER rule_id
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN rule_hash 'SHA-256 (hex) of the bytes of the rule file the run executed, as loaded; empty for runs recorded before it was kept'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}findings_dropped UInt32 AFTER suppressed
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN findings_dropped 'Findings the run produced beyond detect.sql_rules.max_findings and did not store (the run stored the most severe ones and one findings_cap finding); 0 when under the cap'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN rows 'Findings (groups) the evaluation produced, before the findings cap, exceptions applied'
;
{{- redistribute "rule_runs"}}
