-- Every attempt to deliver a notification, and its outcome. Pending alerts
-- are findings with status new and no final outcome here, so they survive a
-- restart; threads and incidents are reconstructed from the sent rows.
CREATE TABLE IF NOT EXISTS {{local "alert_deliveries"}}{{onCluster}}
(
    attempted_at   DateTime            COMMENT 'When the attempt was made',
    seq            UInt64              COMMENT 'Order of attempts (unix nanoseconds when recorded)',
    finding_id     String              COMMENT 'Finding delivered (findings.finding_id); empty for resolution notes',
    rule_id        String              COMMENT 'Rule of the finding',
    group_key      String              COMMENT 'Group of the finding (the incident is rule_id + group_key)',
    eval_time      DateTime            COMMENT 'Evaluation time of the finding',
    kind           {{lc "String"}}     COMMENT 'alert (first message of an incident), repeat (thread reply), resolved (thread reply when the condition cleared)',
    notifier       {{lc "String"}}     COMMENT 'slack, webhook or console',
    channel        String              COMMENT 'Channel routed to',
    attempt        UInt16              COMMENT 'Attempt number for this finding and kind, from 1',
    outcome        {{lc "String"}}     COMMENT 'sent, retry (failed, will be retried), failed (failed for good, e.g. channel_not_found), silenced (matched a silence: recorded, not sent)',
    code           String              COMMENT 'Failure class: rate_limited, http_500, timeout, channel_not_found, invalid_auth, ...',
    error          String              COMMENT 'Failure message (never contains a token, webhook URL or API key)',
    slack_channel  String              COMMENT 'Channel id Slack answered with',
    slack_ts       String              COMMENT 'Slack message timestamp of the message sent',
    thread_ts      String              COMMENT 'Thread (parent message ts) a reply went to',
    silence_id     String              COMMENT 'Silence that matched, for outcome silenced'
)
ENGINE = {{engine "MergeTree" "alert_deliveries"}}
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (rule_id, group_key, attempted_at)
;
{{- distributed "alert_deliveries"}}

-- Silences: findings matching an active silence are recorded, not sent.
-- One row per version; read with FINAL.
CREATE TABLE IF NOT EXISTS {{local "silences"}}{{onCluster}}
(
    silence_id  String              COMMENT 'Silence id',
    rule_id     String              COMMENT 'Rule silenced; empty = any rule',
    key_id      String              COMMENT 'Key silenced (as findings.key_id); empty = any key',
    client_ip   String              COMMENT 'Client IP or CIDR silenced; empty = any address',
    reason      String              COMMENT 'Why (required)',
    created_by  String              COMMENT 'Who created it',
    created_at  DateTime            COMMENT 'When it was created',
    starts_at   DateTime            COMMENT 'Start of the silence',
    ends_at     DateTime            COMMENT 'End of the silence',
    expired     UInt8               COMMENT '1 when expired early by auditwatch silence expire',
    updated_at  DateTime            COMMENT 'Version of the row'
)
ENGINE = {{engine "ReplacingMergeTree(updated_at)" "silences"}}
ORDER BY silence_id
;
{{- distributed "silences"}}
