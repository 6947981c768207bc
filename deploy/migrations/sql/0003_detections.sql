-- Findings: every match of a rule, one row per rule, group and evaluation.
-- status 'new' findings are the ones alerted on; 'suppressed' ones matched
-- again within the rule's cooldown and are kept for the record only.
CREATE TABLE IF NOT EXISTS {{local "findings"}}{{onCluster}}
(
    finding_id    String              COMMENT 'Stable id: hash of rule, group and evaluation time',
    rule_id       String              COMMENT 'Rule id',
    rule_name     String              COMMENT 'Rule name at evaluation time',
    rule_type     {{lc "String"}}     COMMENT 'threshold, ip_allowlist, key_rotation, stale_key, new_value or sql',
    severity      {{lc "String"}}     COMMENT 'info, low, medium, high or critical (after escalation)',
    status        {{lc "String"}}     COMMENT 'new (to alert) or suppressed (within the cooldown of an earlier finding for the same group)',
    group_key     String              COMMENT 'The group the finding is about, as field=value pairs, e.g. key_id=key_01…',
    key_id        String              COMMENT 'Key the finding is about, when the group has one',
    key_hint      String              COMMENT 'Masked key, for people',
    account_id    String              COMMENT 'Account owning the key, when known',
    client_ip     String              COMMENT 'Client IP the finding is about, when the group has one',
    eval_time     DateTime            COMMENT 'Evaluation time (the schedule tick)',
    window_start  DateTime            COMMENT 'Start of the event window read (inclusive)',
    window_end    DateTime            COMMENT 'End of the event window read (exclusive): eval_time minus the query delay',
    value         Float64             COMMENT 'Observed value (count, distinct count, days overdue, ...)',
    threshold     Float64             COMMENT 'Threshold the value was compared with (after overrides)',
    summary       String              COMMENT 'One-line human summary',
    evidence      String              COMMENT 'JSON: top client IPs, sample request ids, first/last seen, rule-specific details',
    labels        String              COMMENT 'JSON object of the rule labels (for routing)',
    runbook       String              COMMENT 'Runbook URL of the rule',
    created_at    DateTime            COMMENT 'When the finding was stored'
)
ENGINE = {{engine "ReplacingMergeTree" "findings"}}
PARTITION BY toYYYYMM(eval_time)
ORDER BY (rule_id, eval_time, group_key)
;
{{- distributed "findings"}}

-- One row per rule evaluation: the detector's own audit log.
CREATE TABLE IF NOT EXISTS {{local "rule_runs"}}{{onCluster}}
(
    rule_id       String              COMMENT 'Rule id',
    eval_time     DateTime            COMMENT 'Evaluation time',
    started_at    DateTime            COMMENT 'Wall-clock start of the run',
    duration_ms   UInt32              COMMENT 'Run duration in milliseconds',
    rows          UInt32              COMMENT 'Rows (groups) the rule query returned',
    findings      UInt32              COMMENT 'Findings stored with status new',
    suppressed    UInt32              COMMENT 'Findings stored with status suppressed (cooldown)',
    error         String              COMMENT 'Error message, empty on success',
    trigger       {{lc "String"}}     COMMENT 'schedule, manual, backtest or test'
)
ENGINE = {{engine "MergeTree" "rule_runs"}}
PARTITION BY toYYYYMM(eval_time)
ORDER BY (rule_id, eval_time)
;
{{- distributed "rule_runs"}}
