-- What responders did from Slack (alerts.slack.interactive): acknowledge,
-- silence, expected activity, resolve. One row per action; action_id is
-- derived from the Slack interaction, so a redelivered interaction writes
-- the same row again (ReplacingMergeTree, read with FINAL) and is not acted
-- on twice.
CREATE TABLE IF NOT EXISTS {{local "alert_actions"}}{{onCluster}}
(
    action_id      String              COMMENT 'Action id: act_ + 16 hex characters of SHA-256 over the Slack interaction (message ts, button, user, action time; or the modal view id), the same for a redelivered interaction',
    acted_at       DateTime            COMMENT 'When auditwatch processed the action (UTC)',
    finding_id     String              COMMENT 'Finding acted on (findings.finding_id)',
    rule_id        String              COMMENT 'Rule of the finding',
    group_key      String              COMMENT 'Group of the finding (the incident is rule_id + group_key)',
    action         {{lc "String"}}     COMMENT 'acknowledge, silence_key (the key for 24 h), silence_rule (this rule for this key or address, from the modal), expected (expected activity: finding closed and the group silenced), resolve (finding closed)',
    slack_user_id  String              COMMENT 'Slack user id (U...) of who acted; never a name or email',
    slack_channel  String              COMMENT 'Channel id of the alert message',
    slack_ts       String              COMMENT 'Slack ts of the alert message (its thread holds the note of the action)',
    reason         String              COMMENT 'Reason given in the modal (masked like all free text: no full API key); empty for buttons without one',
    silence_id     String              COMMENT 'Silence created by the action (silences.silence_id); empty when none',
    ends_at        DateTime            COMMENT 'End of the silence created; 1970-01-01 00:00:00 when none',
    finding_status {{lc "String"}}     COMMENT 'Status the finding was given (expected, resolved); empty when unchanged'
)
ENGINE = {{engine "ReplacingMergeTree" "alert_actions"}}
PARTITION BY toYYYYMM(acted_at)
ORDER BY (action_id)
;
{{- distributed "alert_actions"}}
