package triage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/detect/summary"
)

// ActionStore records triage actions.
type ActionStore interface {
	// RecordAction stores a; storing the same action id again is harmless.
	RecordAction(ctx context.Context, a Action) error
	// ActionRecorded reports whether an action with id was stored.
	ActionRecorded(ctx context.Context, id string) (bool, error)
}

// FindingStore reads findings and changes their status.
type FindingStore interface {
	// Finding returns the finding with id, nil (and no error) when none.
	Finding(ctx context.Context, id string) (*detect.Finding, error)
	// SetFindingStatus stores f with status.
	SetFindingStatus(ctx context.Context, f detect.Finding, status string) error
}

// SilenceStore creates and lists silences; alerts.Store is one.
type SilenceStore interface {
	AddSilence(ctx context.Context, s alerts.Silence) error
	Silences(ctx context.Context, since time.Time) ([]alerts.Silence, error)
}

// KeyRegistry lists the registered keys; keys.Store is one.
type KeyRegistry interface {
	All(ctx context.Context) ([]keys.Key, error)
}

// UsageSummariser builds usage reports; summary.Builder is one.
type UsageSummariser interface {
	Build(ctx context.Context, o summary.Options) (*summary.Report, error)
}

// Deps are what the runner reads and writes. Every field is required.
type Deps struct {
	Actions  ActionStore
	Findings FindingStore
	Silences SilenceStore
	Keys     KeyRegistry
	Usage    UsageSummariser
}

// Config configures a Runner. Its String and LogValue never show the
// tokens.
type Config struct {
	// AppToken is the app-level token (xapp-…, scope connections:write)
	// that opens the Socket Mode connection.
	AppToken string
	// BotToken is the bot token (xoxb-…) of the same app, for the Web API
	// calls (chat.update, chat.postMessage, chat.postEphemeral,
	// views.open, usergroups.users.list, conversations.members).
	BotToken string
	// APIURL overrides the Web API base URL (tests: slacktest's APIURL).
	APIURL string
	// HTTPClient sends the Web API requests (default http.DefaultClient).
	HTTPClient *http.Client
	// Timeout bounds each Web API request (default 10 s).
	Timeout time.Duration
	// AllowedUsers (U…), AllowedUsergroups (S…) and AllowedChannels (C…)
	// say who may silence, mark expected, resolve and look keys up: a user
	// listed, or a member of a group or channel listed. At least one must
	// be set.
	AllowedUsers, AllowedUsergroups, AllowedChannels []string
	// MembershipTTL is how long group and channel memberships are cached
	// (default 5 minutes).
	MembershipTTL time.Duration
	// PingInterval is how long without a ping from Slack the connection is
	// considered dead and reopened (default slack-go's, 30 s).
	PingInterval time.Duration
	// Logger receives connection changes and failures; nil discards.
	Logger *slog.Logger
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// String describes c without its tokens.
func (c Config) String() string {
	return fmt.Sprintf("triage.Config{app_token: %s, bot_token: %s, allowed_users: %d, allowed_usergroups: %d, allowed_channels: %d}",
		maskToken(c.AppToken), maskToken(c.BotToken), len(c.AllowedUsers), len(c.AllowedUsergroups), len(c.AllowedChannels))
}

// LogValue logs c without its tokens.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("app_token", maskToken(c.AppToken)), slog.String("bot_token", maskToken(c.BotToken)),
		slog.Int("allowed_users", len(c.AllowedUsers)), slog.Int("allowed_usergroups", len(c.AllowedUsergroups)), slog.Int("allowed_channels", len(c.AllowedChannels)))
}

func maskToken(tok string) string {
	if tok == "" {
		return ""
	}
	if i := strings.IndexByte(tok, '-'); i > 0 && i <= 5 {
		return tok[:i+1] + "[redacted]"
	}
	return "[redacted]"
}

// Runner answers Slack interactions over Socket Mode. Create it with New
// and call Run once.
type Runner struct {
	cfg   Config
	deps  Deps
	api   *slack.Client // bot token
	sm    *socketmode.Client
	auth  *authorizer
	log   *slog.Logger
	scrub *strings.Replacer

	mu   sync.Mutex
	done map[string]doneEnvelope // envelope id → its answer, for redeliveries
}

// doneEnvelope is an envelope already handled and the payload it was
// acknowledged with.
type doneEnvelope struct {
	at      time.Time
	payload any
}

// New checks cfg and deps and returns a Runner; it does not contact Slack.
// Its errors never contain a token.
func New(cfg Config, deps Deps) (*Runner, error) {
	cfg.AppToken, cfg.BotToken = strings.TrimSpace(cfg.AppToken), strings.TrimSpace(cfg.BotToken)
	switch {
	case !strings.HasPrefix(cfg.AppToken, "xapp-"):
		return nil, errors.New("triage: the app-level token must start with xapp- (Basic Information → App-Level Tokens, scope connections:write)")
	case cfg.BotToken == "" || strings.HasPrefix(cfg.BotToken, "xapp-"):
		return nil, errors.New("triage: a bot token (xoxb-…) is needed for the Web API")
	case strings.ContainsAny(cfg.AppToken+cfg.BotToken, " \t\r\n"):
		return nil, errors.New("triage: a token contains white space")
	case len(cfg.AllowedUsers)+len(cfg.AllowedUsergroups)+len(cfg.AllowedChannels) == 0:
		return nil, errors.New("triage: set allowed users, user groups or channels: who may silence and resolve")
	case deps.Actions == nil || deps.Findings == nil || deps.Silences == nil || deps.Keys == nil || deps.Usage == nil:
		return nil, errors.New("triage: missing a store")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MembershipTTL <= 0 {
		cfg.MembershipTTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	opts := []slack.Option{slack.OptionHTTPClient(hc), slack.OptionAppLevelToken(cfg.AppToken)}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, slack.OptionAPIURL(u))
	}
	api := slack.New(cfg.BotToken, opts...)
	r := &Runner{
		cfg:   cfg,
		deps:  deps,
		api:   api,
		log:   log,
		scrub: strings.NewReplacer(cfg.AppToken, maskToken(cfg.AppToken), cfg.BotToken, maskToken(cfg.BotToken)),
		done:  map[string]doneEnvelope{},
	}
	smOpts := []socketmode.Option{socketmode.OptionLog(logAdapter{r})}
	if cfg.PingInterval > 0 {
		smOpts = append(smOpts, socketmode.OptionPingInterval(cfg.PingInterval))
	}
	r.sm = socketmode.New(api, smOpts...)
	r.auth = newAuthorizer(api, cfg)
	return r, nil
}

// logAdapter passes socketmode's log lines to slog at debug level, without
// tokens.
type logAdapter struct{ r *Runner }

func (l logAdapter) Output(_ int, s string) error {
	l.r.log.Debug("slack socket mode: " + l.r.clean(strings.TrimSpace(s)))
	return nil
}

// clean removes the tokens from s (errors of slack-go never hold them; this
// is a second line of defence).
func (r *Runner) clean(s string) string { return r.scrub.Replace(s) }

// Run connects to Slack and answers interactions until ctx ends; it then
// finishes the interaction in hand (under context.WithoutCancel, bounded),
// closes the connection and returns nil. It returns an error when Slack
// refuses the app-level token (invalid_auth, token_revoked, …). Lost
// connections are reopened with backoff; interactions Slack redelivers
// after a reconnect are answered once.
func (r *Runner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.sm.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			<-runErr
			r.log.Info("slack triage stopped")
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack socket mode: %s", r.clean(errString(err)))
		case evt := <-r.sm.Events:
			r.handle(ctx, evt)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "stopped"
	}
	return err.Error()
}

// handle answers one event and acknowledges it.
func (r *Runner) handle(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		r.log.Debug("slack socket mode: connecting")
		return
	case socketmode.EventTypeConnected:
		r.log.Info("slack socket mode: connected")
		return
	case socketmode.EventTypeHello:
		return
	case socketmode.EventTypeConnectionError:
		if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
			r.log.Warn("slack socket mode: connection failed; retrying", "attempt", ce.Attempt, "backoff", ce.Backoff, "err", r.clean(errString(ce.ErrorObj)))
		}
		return
	case socketmode.EventTypeInvalidAuth:
		r.log.Error("slack socket mode: the app-level token was refused")
		return
	case socketmode.EventTypeDisconnect:
		r.log.Info("slack socket mode: Slack asked to reconnect")
		return
	case socketmode.EventTypeErrorBadMessage, socketmode.EventTypeErrorWriteFailed:
		r.log.Warn("slack socket mode: " + string(evt.Type))
		return
	}
	if evt.Request == nil || evt.Request.EnvelopeID == "" {
		return
	}
	req := *evt.Request
	if payload, ok := r.seen(req.EnvelopeID); ok {
		// Redelivered (the ack was lost with the connection): answer as
		// the first time, do nothing again.
		r.log.Info("slack interaction redelivered; already handled", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt)
		r.ack(req, payload)
		return
	}
	// An interaction being handled is finished even when ctx ends, so its
	// outcome is recorded; bounded.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	var payload any
	switch evt.Type {
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if ok {
			payload = r.interactive(hctx, cb)
		}
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if ok {
			payload = r.command(hctx, cmd)
		}
	}
	r.remember(req.EnvelopeID, payload)
	r.ack(req, payload)
}

func (r *Runner) ack(req socketmode.Request, payload any) {
	var err error
	if payload == nil {
		err = r.sm.Ack(req)
	} else {
		err = r.sm.Ack(req, payload)
	}
	if err != nil {
		r.log.Warn("slack socket mode: ack failed", "envelope_id", req.EnvelopeID, "err", r.clean(err.Error()))
	}
}

// seen returns the answer of an envelope already handled.
func (r *Runner) seen(id string) (any, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.done[id]
	return d.payload, ok
}

// remember notes an envelope handled; entries older than an hour (Slack
// stops redelivering within minutes) are forgotten.
func (r *Runner) remember(id string, payload any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for k, d := range r.done {
		if now.Sub(d.at) > time.Hour {
			delete(r.done, k)
		}
	}
	r.done[id] = doneEnvelope{at: now, payload: payload}
}

// request bounds one Web API call.
func (r *Runner) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.Timeout)
}

// ephemeral tells user, in channel, something only they see.
func (r *Runner) ephemeral(ctx context.Context, channel, user, text string) {
	rctx, cancel := r.request(ctx)
	defer cancel()
	if _, err := r.api.PostEphemeralContext(rctx, channel, user, slack.MsgOptionText(text, false)); err != nil {
		r.log.Warn("slack: ephemeral message failed", "channel", channel, "user", user, "err", r.clean(err.Error()))
	}
}
