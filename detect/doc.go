// Package detect evaluates rules (package rules) against ClickHouse and turns
// matches into findings.
//
// Evaluation takes the evaluation time as an argument — Engine.Eval(ctx,
// rule, t) reads the window [t−delay−window, t−delay) and nothing else — so
// the same call gives the same findings in the daemon, in `rules test` and in
// backtests. Run adds what the daemon needs around it: exceptions, cooldown
// (state kept in the findings table, so a restart re-alerts nothing), and a
// record of every run in rule_runs. Scheduler runs rules on their cron
// schedules and reloads rule files all-or-nothing.
package detect
