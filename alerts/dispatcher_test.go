package alerts_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/rules"
)

var quiet = slog.New(slog.DiscardHandler)

const fullKey = "bk_live_Q7w8E9r0T1y2U3i4O5p6A7s8D9f0G1h2"

type env struct {
	t      *testing.T
	db     string
	ds     *detect.Store
	as     *alerts.Store
	now    time.Time
	router alerts.Router
}

func newEnv(t *testing.T) *env {
	t.Helper()
	conn := testenv.ClickHouse(t)
	db := testenv.ScratchDB(t, conn)
	return &env{t: t, db: db, ds: detect.NewStore(conn, db), as: alerts.NewStore(conn, db), now: time.Now().UTC().Truncate(time.Second),
		router: alerts.Router{DefaultChannel: "#auditwatch", Routes: []alerts.Route{{Severities: []string{"critical"}, Channel: "#sec-critical", Mention: "<!subteam^S1>"}}}}
}

func (e *env) finding(rule, severity, keyID string, eval time.Time, value float64) detect.Finding {
	return detect.Finding{ID: rule + keyID + eval.Format("150405"), RuleID: rule, RuleName: "Rule " + rule, RuleType: "threshold", Severity: severity,
		Status: detect.StatusNew, Group: map[string]string{"key_id": keyID}, GroupKey: "key_id=" + keyID, KeyID: keyID,
		KeyHint: "bk_live_Q7w8…G1h2", EvalTime: eval, WindowStart: eval.Add(-5 * time.Minute), WindowEnd: eval, Value: value, Threshold: 10,
		Summary: "burst on " + keyID + " user-agent " + fullKey, Evidence: detect.Evidence{TopClientIPs: []string{"198.51.100.7"}, SampleRequestIDs: []string{"req-1"}}}
}

func (e *env) save(fs ...detect.Finding) {
	e.t.Helper()
	if err := e.ds.SaveFindings(context.Background(), fs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) run(rule string, eval time.Time) {
	e.t.Helper()
	if err := e.ds.SaveRun(context.Background(), detect.RunRecord{RuleID: rule, EvalTime: eval, StartedAt: eval, Trigger: "schedule"}); err != nil {
		e.t.Fatal(err)
	}
}

// dispatcher returns a dispatcher delivering through n. Its CatchupAfter is
// a day, so that the findings of these tests, hours old, are delivered one
// message per evaluation; the catch-up tests set their own (see
// dispatcherWith).
func (e *env) dispatcher(n alerts.Notifier) *alerts.Dispatcher {
	return e.dispatcherWith(n, func(o *alerts.Options) { o.CatchupAfter = 24 * time.Hour })
}

func (e *env) dispatcherWith(n alerts.Notifier, opt func(*alerts.Options)) *alerts.Dispatcher {
	lookup := func(id string) *rules.Rule {
		return &rules.Rule{ID: id, Name: "Rule " + id, Description: "what it means", Type: "threshold", Severity: "high"}
	}
	o := alerts.Options{Router: e.router, Database: e.db, RetryMin: time.Millisecond, SendResolved: true}
	if opt != nil {
		opt(&o)
	}
	return alerts.NewDispatcher(e.as, n, lookup, o, quiet, nil)
}

// recorder is a Notifier that records messages and can fail.
type recorder struct {
	mu   sync.Mutex
	msgs []*alerts.Message
	fail func(m *alerts.Message) error
	n    int
}

func (r *recorder) Name() string { return "slack" }

func (r *recorder) Notify(_ context.Context, m *alerts.Message) (alerts.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return alerts.Receipt{}, err
		}
	}
	r.n++
	r.msgs = append(r.msgs, m)
	return alerts.Receipt{Channel: "C" + m.Channel, TS: "17000000" + string(rune('0'+r.n)) + ".0001"}, nil
}

func TestGroupingAndRouting(t *testing.T) {
	e := newEnv(t)
	t0 := e.now.Add(-10 * time.Minute)
	e.save(e.finding("burst", "high", "k1", t0, 50), e.finding("burst", "high", "k2", t0, 30), e.finding("burst", "high", "k3", t0, 90),
		e.finding("enum", "critical", "k4", t0, 200))
	rec := &recorder{}
	st, err := e.dispatcher(rec).Cycle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 2 || st.Sent != 4 || len(rec.msgs) != 2 {
		t.Fatalf("stats %+v, %d messages; want 2 messages for 4 findings", st, len(rec.msgs))
	}
	var burst, enum *alerts.Message
	for _, m := range rec.msgs {
		switch m.RuleID {
		case "burst":
			burst = m
		case "enum":
			enum = m
		}
	}
	if burst.Channel != "#auditwatch" || burst.TotalGroups != 3 || burst.Findings[0].KeyID != "k3" || burst.Mention != "" {
		t.Errorf("grouped message: channel %s, %d groups, first %s", burst.Channel, burst.TotalGroups, burst.Findings[0].KeyID)
	}
	if enum.Channel != "#sec-critical" || enum.Mention != "<!subteam^S1>" || !strings.Contains(enum.Query, "key_id IN ('k4')") {
		t.Errorf("critical message: %+v", enum)
	}
	// Delivered: nothing pending any more.
	st, err = e.dispatcher(rec).Cycle(context.Background())
	if err != nil || st.Messages != 0 || len(rec.msgs) != 2 {
		t.Fatalf("second cycle resent: %+v %v", st, err)
	}
}

func TestFailuresRetriedAcrossRestart(t *testing.T) {
	e := newEnv(t)
	t0 := e.now.Add(-10 * time.Minute)
	e.save(e.finding("burst", "high", "k1", t0, 50), e.finding("perm", "high", "k9", t0, 50))
	down := &recorder{fail: func(m *alerts.Message) error {
		if m.RuleID == "perm" {
			return &alerts.DeliveryError{Err: errors.New("channel_not_found"), Code: "channel_not_found"}
		}
		return &alerts.DeliveryError{Err: errors.New("503"), Retry: true, Code: "http_503"}
	}}
	st, err := e.dispatcher(down).Cycle(context.Background())
	if err != nil || st.Retrying != 1 || st.Failed != 1 || st.Sent != 0 {
		t.Fatalf("outage cycle: %+v, %v", st, err)
	}
	// A new dispatcher (a restart) with Slack back sends what was pending;
	// the permanent failure is not retried.
	up := &recorder{}
	st, err = e.dispatcher(up).Cycle(context.Background())
	if err != nil || st.Sent != 1 || len(up.msgs) != 1 || up.msgs[0].RuleID != "burst" {
		t.Fatalf("after restart: %+v, %v, %d messages", st, err, len(up.msgs))
	}
	n := testenv.Count(t, testenv.ClickHouse(t), "SELECT count() FROM "+e.db+".alert_deliveries WHERE rule_id = 'burst'")
	if n != 2 { // 3 attempts in the first cycle are one record (retry), then sent
		t.Fatalf("%d delivery records for burst, want 2 (retry, sent)", n)
	}
	if c := testenv.Count(t, testenv.ClickHouse(t), "SELECT count() FROM "+e.db+".alert_deliveries WHERE outcome = 'failed' AND code = 'channel_not_found'"); c != 1 {
		t.Fatalf("permanent failure not recorded with its code")
	}
}

func TestSilences(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := e.now.Add(-10 * time.Minute)
	sil := alerts.Silence{ID: alerts.NewSilenceID(), RuleID: "burst", KeyID: "k1", Reason: "load test", CreatedBy: "t",
		CreatedAt: t0, StartsAt: t0.Add(-time.Hour), EndsAt: e.now.Add(time.Hour)}
	if err := e.as.AddSilence(ctx, sil); err != nil {
		t.Fatal(err)
	}
	e.save(e.finding("burst", "high", "k1", t0, 50), e.finding("burst", "high", "k2", t0, 50))
	rec := &recorder{}
	st, err := e.dispatcher(rec).Cycle(ctx)
	if err != nil || st.Silenced != 1 || st.Sent != 1 || rec.msgs[0].Findings[0].KeyID != "k2" {
		t.Fatalf("%+v %v", st, err)
	}
	if err := e.as.ExpireSilence(ctx, sil.ID); err != nil {
		t.Fatal(err)
	}
	ss, err := e.as.Silences(ctx, time.Time{})
	if err != nil || len(ss) != 1 || !ss[0].Expired {
		t.Fatalf("silence not expired: %+v %v", ss, err)
	}
	e.save(e.finding("burst", "high", "k1", t0.Add(5*time.Minute), 50))
	st, err = e.dispatcher(rec).Cycle(ctx)
	if err != nil || st.Sent != 1 {
		t.Fatalf("after expiry: %+v %v", st, err)
	}
	if err := (alerts.Silence{Reason: "x", StartsAt: t0, EndsAt: t0.Add(time.Hour)}).Validate(); err == nil {
		t.Fatal("a silence matching everything was accepted")
	}
}

func TestRepeatsThreadAndResolutions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := e.now.Add(-90 * time.Minute)
	e.save(e.finding("burst", "high", "k1", t0, 50))
	e.run("burst", t0)
	rec := &recorder{}
	if _, err := e.dispatcher(rec).Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	parent := "17000000" + "1" + ".0001"
	// The condition goes on: a suppressed finding, then a new one after the cooldown.
	sup := e.finding("burst", "high", "k1", t0.Add(time.Minute), 60)
	sup.Status = detect.StatusSuppressed
	e.save(sup, e.finding("burst", "high", "k1", t0.Add(40*time.Minute), 70))
	e.run("burst", t0.Add(40*time.Minute))
	if _, err := e.dispatcher(rec).Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 2 || rec.msgs[1].Kind != alerts.KindRepeat || rec.msgs[1].ThreadTS != parent || rec.msgs[1].UpdateTS != parent || rec.msgs[1].Repeats != 1 {
		t.Fatalf("repeat not threaded: %+v", rec.msgs[len(rec.msgs)-1])
	}
	// A later run without a match resolves it, once.
	e.run("burst", t0.Add(45*time.Minute))
	st, err := e.dispatcher(rec).Cycle(ctx)
	if err != nil || st.Resolved != 1 || rec.msgs[2].Kind != alerts.KindResolved || rec.msgs[2].ThreadTS != parent {
		t.Fatalf("resolution: %+v %v %+v", st, err, rec.msgs[len(rec.msgs)-1])
	}
	if st, _ := e.dispatcher(rec).Cycle(ctx); st.Resolved != 0 || len(rec.msgs) != 3 {
		t.Fatalf("resolved twice: %+v", st)
	}
	// The incident is closed: the next match opens a new one (a new parent).
	e.save(e.finding("burst", "high", "k1", t0.Add(80*time.Minute), 70))
	if _, err := e.dispatcher(rec).Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	if last := rec.msgs[len(rec.msgs)-1]; last.Kind != alerts.KindAlert || last.ThreadTS != "" {
		t.Fatalf("new incident: %+v", last)
	}
}

func TestConsoleNeverPrintsAKey(t *testing.T) {
	e := newEnv(t)
	e.save(e.finding("burst", "critical", "k1", e.now.Add(-time.Minute), 50))
	var out bytes.Buffer
	st, err := e.dispatcher(alerts.NewConsole(&out)).Cycle(context.Background())
	if err != nil || st.Sent != 1 {
		t.Fatalf("%+v %v", st, err)
	}
	text := out.String()
	if strings.Contains(text, fullKey) || strings.Contains(text, fullKey[8:24]) {
		t.Fatalf("console output contains the key:\n%s", text)
	}
	for _, want := range []string{"[CRITICAL] Rule burst", "<!subteam^S1>", "198.51.100.7", "req-1", "What it means: what it means", "FROM " + e.db + ".access_log"} {
		if !strings.Contains(text, want) {
			t.Errorf("console output lacks %q:\n%s", want, text)
		}
	}
}

// TestRepeatInTheSameCycleIsThreaded: after an outage or a catch-up, two
// alerting findings of one group are pending together; the later one goes
// into the thread of the earlier one.
func TestRepeatInTheSameCycleIsThreaded(t *testing.T) {
	e := newEnv(t)
	t0 := e.now.Add(-3 * time.Hour)
	e.save(e.finding("burst", "high", "k1", t0, 50), e.finding("burst", "high", "k1", t0.Add(time.Hour), 80))
	rec := &recorder{}
	st, err := e.dispatcher(rec).Cycle(context.Background())
	if err != nil || st.Messages != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	if rec.msgs[0].Kind != alerts.KindAlert || rec.msgs[1].Kind != alerts.KindRepeat || rec.msgs[1].ThreadTS == "" {
		t.Fatalf("second finding not threaded under the first: %+v", rec.msgs[1])
	}
}
