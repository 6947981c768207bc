// Package slack delivers auditwatch alerts to Slack, with a bot token (Web
// API: threads and updates) or an incoming webhook (one channel, standalone
// messages).
//
// Render turns an alerts.Message into Block Kit blocks and a one-line
// notification text; Notifier sends them and classifies failures into
// *alerts.DeliveryError for the dispatcher's retries. Credentials never
// leave the package: errors and log lines are scrubbed of the token, the
// webhook URL and anything shaped like them, and every value taken from a
// finding goes through secret.Redact before it is rendered.
//
// The subpackage slacktest is a local fake of the Slack Web API and of
// incoming webhooks for tests. docs/slack.md explains how to set up the
// Slack app.
package slack
