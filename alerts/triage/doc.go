// Package triage answers Slack interactions on alert messages over Socket
// Mode: the buttons alerts/slack adds under each finding when
// slack.Config.Interactive is set (Acknowledge, Silence this key 24 h,
// Silence this rule for this key…, Expected activity…, Resolve) and the
// slash command /auditwatch (key, silences, help).
//
// The Runner keeps one outbound WebSocket connection to Slack (slack-go's
// socketmode, opened with an app-level token through apps.connections.open;
// no inbound HTTP) and answers the Web API with the bot token (chat.update,
// chat.postMessage in the alert's thread, chat.postEphemeral, views.open,
// usergroups.users.list, conversations.members).
//
// Every action is recorded in ClickHouse (alert_actions) with the Slack user
// id, the time, the finding and the reason, and noted in the alert's thread.
// Silences are the same as `auditwatch silence add` creates
// (alerts.Store.AddSilence): the dispatcher honours them without knowing
// about Slack. Expected activity and Resolve also close the finding
// (findings.status expected or resolved).
//
// Exactly once: an action's id is derived from the interaction (message,
// button, user and action time; or the modal's view id), the silence it
// creates takes its id from the action id, and an action already recorded
// is not acted on again. A redelivered envelope (Slack resends what was not
// acknowledged, e.g. when the socket dropped before the ack) is therefore
// acknowledged without a second silence, record or thread note.
//
// Authorisation: Acknowledge is open to everyone who can see the message
// (it changes nothing but says who is on it); silences, expected activity,
// resolve and the lookups of the slash command need the user to be in
// Config.AllowedUsers, a member of one of Config.AllowedUsergroups or of one
// of Config.AllowedChannels. Others get an ephemeral refusal and nothing is
// recorded.
//
// Nothing the runner sends, records or logs holds a full API key or a
// token: free text passes through ingest/secret's masker and keys are shown
// by their hint.
package triage
