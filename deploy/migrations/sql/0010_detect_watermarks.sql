-- Trustworthy alerts: each finding says how it was found (schedule, replay of
-- missed ticks, late data), whether it broke a cooldown by escalating, and the
-- fingerprint of its key (the key's other identity in access_log.key_id);
-- each run says the window it read and whether its events were complete.
ALTER TABLE {{local "findings"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}key_fingerprint String AFTER key_hint
;
ALTER TABLE {{local "findings"}}{{alterOnCluster}} COMMENT COLUMN key_fingerprint 'Fingerprint of the key (first 16 hex digits of its SHA-256): rows of access_log name a registered key by its id or, when the gateway did not know the id, by this fingerprint'
;
ALTER TABLE {{local "findings"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}trigger {{lc "String"}} AFTER runbook
;
ALTER TABLE {{local "findings"}}{{alterOnCluster}} COMMENT COLUMN trigger 'How the evaluation was started: schedule, replay (a tick missed while detect was down or busy), late (a window evaluated again because events arrived after it was evaluated), manual, backtest or test'
;
ALTER TABLE {{local "findings"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}escalated_from {{lc "String"}} AFTER trigger
;
ALTER TABLE {{local "findings"}}{{alterOnCluster}} COMMENT COLUMN escalated_from 'Highest severity already reported for the same rule and group within the cooldown when this finding broke the cooldown by being more severe; empty otherwise'
;
ALTER TABLE {{local "findings"}}{{alterOnCluster}} COMMENT COLUMN status 'new (to alert), signal (info or low severity: recorded for the usage review and daily digest, never alerted on its own), or suppressed (within the cooldown of an earlier finding for the same group with the same or higher severity)'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}window_start DateTime AFTER eval_time
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN window_start 'Start of the event window read (inclusive)'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}window_end DateTime AFTER window_start
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN window_end 'End of the event window read (exclusive)'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}watermark DateTime AFTER window_end
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN watermark 'Ingest watermark when the run started: events before it were stored (1970 when unknown)'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}complete UInt8 DEFAULT 1 AFTER watermark
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN complete '1 when the watermark had passed window_end; 0 when the run gave up waiting (detect.max_wait) and evaluated an incomplete window'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} ADD COLUMN {{ifNotExists}}signals UInt32 AFTER findings
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN signals 'Findings stored with status signal (info or low severity: recorded, not alerted)'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN findings 'Findings stored with status new (alerted)'
;
ALTER TABLE {{local "rule_runs"}}{{alterOnCluster}} COMMENT COLUMN trigger 'schedule, replay (a missed tick), late (re-evaluation after late data), manual, backtest or test'
;
{{- redistribute "findings" "rule_runs"}}
