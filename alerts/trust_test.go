package alerts_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/alerts"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/detect"
	"github.com/auditwatch/auditwatch/detect/keys"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// TestWake: a woken dispatcher delivers at once, not at its next poll.
func TestWake(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	d := e.dispatcherWith(rec, func(o *alerts.Options) { o.PollInterval = time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(300 * time.Millisecond) // the first cycle finds nothing
	e.save(e.finding("burst", "high", "k1", e.now, 50))
	start := time.Now()
	for range 5 {
		d.Wake() // several wakes: one cycle
	}
	for rec.count() == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("a woken dispatcher did not deliver within 10s (poll interval 1h)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var nilD *alerts.Dispatcher
	nilD.Wake() // alerts disabled: a no-op
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// TestEscalation: a more severe finding of an open incident goes to its
// thread at once, broadcast with the new severity's mention; without an
// open incident it is an ordinary alert.
func TestEscalation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.router.Routes = append(e.router.Routes, alertsRoute("high", "#sec-alerts", ""))
	rec := &recorder{}
	e.save(e.finding("burst", "high", "k1", e.now.Add(-3*time.Minute), 50))
	if _, err := e.dispatcher(rec).Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	parent := rec.msgs[0]
	esc := e.finding("burst", "critical", "k1", e.now.Add(-time.Minute), 500)
	esc.EscalatedFrom = "high"
	// k2 was only a signal before: its escalation opens an incident.
	fresh := e.finding("burst", "critical", "k2", e.now.Add(-time.Minute), 400)
	fresh.EscalatedFrom = "low"
	e.save(esc, fresh)
	st, err := e.dispatcher(rec).Cycle(ctx)
	if err != nil || st.Escalations != 1 || st.Messages != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	var m, alert *alerts.Message
	for _, x := range rec.msgs[1:] {
		switch x.Kind {
		case alerts.KindEscalation:
			m = x
		case alerts.KindAlert:
			alert = x
		}
	}
	if m == nil || alert == nil {
		t.Fatalf("want an escalation and an alert, got %+v", rec.msgs[1:])
	}
	parentTS := "17000000" + "1" + ".0001"
	if m.ThreadTS != parentTS || m.UpdateTS != parentTS || !m.Broadcast || m.Severity != "critical" || m.EscalatedFrom != "high" ||
		m.Mention != "<!subteam^S1>" || m.Channel != "C"+parent.Channel {
		t.Errorf("escalation: %+v", m)
	}
	if alert.Findings[0].KeyID != "k2" || alert.Channel != "#sec-critical" || alert.ThreadTS != "" {
		t.Errorf("escalation without an incident: %+v", alert)
	}
	text := alerts.RenderText(m, "x")
	if !strings.Contains(text, "escalated from high to critical") || !strings.Contains(text, "<!subteam^S1>") {
		t.Errorf("console:\n%s", text)
	}
	conn := testenv.ClickHouse(t)
	if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE kind = 'escalation' AND outcome = 'sent' AND thread_ts = ?", parentTS); n != 1 {
		t.Fatalf("%d escalation records", n)
	}
	// The incident stays open with the escalation counted as a repeat.
	in, err := e.as.OpenIncidents(ctx, e.now.Add(-time.Hour))
	if err != nil || in["burst\x00key_id=k1"] == nil || in["burst\x00key_id=k1"].Repeats != 1 || in["burst\x00key_id=k1"].ParentTS != parentTS {
		t.Fatalf("incidents: %+v %v", in, err)
	}
}

func alertsRoute(sev, channel, mention string) alerts.Route {
	return alerts.Route{Severities: []string{sev}, Channel: channel, Mention: mention}
}

// TestCatchupFolding: 30 findings of two rules delivered long after their
// evaluation are two messages, not 30; the critical one gives its severity
// and mention to its rule's message; they open incidents that later
// repeats thread under.
func TestCatchupFolding(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.router = alerts.Router{DefaultChannel: "#auditwatch", Routes: []alerts.Route{alertsRoute("critical", "#auditwatch", "<!subteam^S1>")}}
	t0 := e.now.Add(-3 * time.Hour)
	var fs []detect.Finding
	for i := range 10 { // burst: 10 evaluations × 2 keys
		fs = append(fs, e.finding("burst", "high", "k1", t0.Add(time.Duration(i)*5*time.Minute), float64(20+i)),
			e.finding("burst", "high", "k2", t0.Add(time.Duration(i)*5*time.Minute), 15))
	}
	for i := range 10 { // enum: 10 keys at one evaluation, one critical
		sev := "medium"
		if i == 7 {
			sev = "critical"
		}
		fs = append(fs, e.finding("enum", sev, fmt.Sprintf("e%d", i), t0.Add(time.Hour), float64(i)))
	}
	fresh := e.finding("burst", "high", "k1", e.now.Add(-time.Minute), 99) // on time: threads under the catch-up message
	e.save(append(fs, fresh)...)
	rec := &recorder{}
	d := e.dispatcherWith(rec, func(o *alerts.Options) { o.MaxGroups = 5 })
	st, err := d.Cycle(ctx)
	if err != nil || st.Folded != 30 || st.Sent != 31 || st.Messages != 3 {
		t.Fatalf("%+v %v", st, err)
	}
	byRule := map[string]*alerts.Message{}
	for _, m := range rec.msgs[:2] {
		if m.Kind != alerts.KindCatchup || !m.Folded {
			t.Fatalf("not a catch-up message: %+v", m)
		}
		byRule[m.RuleID] = m
	}
	b, en := byRule["burst"], byRule["enum"]
	if b.TotalFindings != 20 || b.TotalGroups != 2 || b.GroupCounts["key_id=k1"] != 10 || b.Findings[0].Value != 29 ||
		!b.FirstEval.Equal(t0) || !b.EvalTime.Equal(t0.Add(45*time.Minute)) || b.Mention != "" {
		t.Errorf("burst catch-up: %+v", b)
	}
	if en.TotalFindings != 10 || en.TotalGroups != 10 || len(en.Findings) != 5 || en.Severity != "critical" || en.Mention != "<!subteam^S1>" ||
		en.Findings[0].KeyID != "e7" {
		t.Errorf("enum catch-up: severity %s mention %q findings %d first %s", en.Severity, en.Mention, len(en.Findings), en.Findings[0].KeyID)
	}
	text := alerts.RenderText(b, "x")
	if !strings.Contains(text, "While detect was down or catching up: 20 findings of Rule burst between ") {
		t.Errorf("console:\n%s", text)
	}
	if last := rec.msgs[2]; last.Kind != alerts.KindRepeat || last.ThreadTS != "17000000"+"1"+".0001" {
		t.Errorf("the on-time finding is not threaded under the catch-up message: %+v", last)
	}
	conn := testenv.ClickHouse(t)
	if n := testenv.Count(t, conn, "SELECT count() FROM "+e.db+".alert_deliveries WHERE kind = 'catchup' AND outcome = 'sent'"); n != 30 {
		t.Fatalf("%d catch-up records, want 30", n)
	}
	if st, err := d.Cycle(ctx); err != nil || st.Sent != 0 {
		t.Fatalf("resent: %+v %v", st, err)
	}
	in, err := e.as.OpenIncidents(ctx, e.now.Add(-24*time.Hour))
	if err != nil || len(in) != 12 {
		t.Fatalf("%d incidents, want 12 (2 burst + 10 enum): %v", len(in), err)
	}
}

// TestFoldedResolutions: 25 incidents whose condition ended long ago are
// resolved by one note, not 25; a recent one keeps its own note.
func TestFoldedResolutions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t0 := e.now.Add(-2 * time.Hour)
	var fs []detect.Finding
	for i := range 25 {
		fs = append(fs, e.finding("burst", "high", fmt.Sprintf("k%02d", i), t0, 50))
	}
	fs = append(fs, e.finding("burst", "high", "recent", e.now.Add(-2*time.Minute), 50))
	e.save(fs...)
	rec := &recorder{}
	d := e.dispatcherWith(rec, nil)
	if st, err := d.Cycle(ctx); err != nil || st.Messages != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	e.run("burst", e.now.Add(-time.Minute)) // ran since, without a match
	st, err := d.Cycle(ctx)
	if err != nil || st.Resolved != 26 {
		t.Fatalf("%+v %v", st, err)
	}
	notes := rec.msgs[2:]
	if len(notes) != 2 {
		t.Fatalf("%d resolution notes, want 2 (one folded, one in a thread)", len(notes))
	}
	var folded, single *alerts.Message
	for _, m := range notes {
		if m.Folded {
			folded = m
		} else {
			single = m
		}
	}
	if folded == nil || folded.Kind != alerts.KindResolved || folded.ThreadTS != "" || len(folded.Findings) != 25 ||
		single == nil || single.ThreadTS == "" || single.Findings[0].KeyID != "recent" {
		t.Fatalf("notes: %+v", notes)
	}
	if text := alerts.RenderText(folded, "x"); !strings.Contains(text, "25 incidents of Rule burst no longer match") {
		t.Errorf("console:\n%s", text)
	}
	if n := testenv.Count(t, testenv.ClickHouse(t), "SELECT count() FROM "+e.db+".alert_deliveries WHERE kind = 'resolved' AND outcome = 'sent'"); n != 26 {
		t.Fatalf("%d resolutions recorded, want 26", n)
	}
	if st, err := d.Cycle(ctx); err != nil || st.Resolved != 0 {
		t.Fatalf("resolved again: %+v %v", st, err)
	}
}

func TestConsoleLateData(t *testing.T) {
	e := newEnv(t)
	f := e.finding("burst", "high", "k1", e.now, 50)
	f.Trigger = detect.TriggerLate
	text := alerts.RenderText(&alerts.Message{Kind: alerts.KindAlert, RuleName: "Rule burst", Severity: "high", Findings: []detect.Finding{f}, TotalGroups: 1}, "x")
	if !strings.Contains(text, alerts.LateDataNote) {
		t.Errorf("console:\n%s", text)
	}
	f.Trigger = detect.TriggerReplay
	if text := alerts.RenderText(&alerts.Message{Kind: alerts.KindAlert, Findings: []detect.Finding{f}}, "x"); strings.Contains(text, "late data") {
		t.Errorf("a replay says late data:\n%s", text)
	}
}

func TestSilenceMatchesBothKeyIdentities(t *testing.T) {
	f := detect.Finding{RuleID: "burst", KeyID: "key_01", KeyFingerprint: "a1b2c3d4e5f60718", Group: map[string]string{"key_id": "key_01"}}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"key_01", true}, {"a1b2c3d4e5f60718", true}, {"key_02", false}, {"", true}} {
		s := alerts.Silence{RuleID: "burst", KeyID: tt.key}
		if got := s.Matches(&f); got != tt.want {
			t.Errorf("silence on key %q matches = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestResolveSilenceKey(t *testing.T) {
	reg := []keys.Key{
		{ID: "key_01", Fingerprint: "f00000000000000a", Hint: "bk_live_AAAA…1111"},
		{ID: "key_02", Fingerprint: "f00000000000000b", Hint: "bk_live_BBBB…2222"},
		{ID: "key_03", Hint: "bk_live_BBBB…2222"},
	}
	for _, tt := range []struct {
		given, want string
		found, err  bool
	}{
		{"key_01", "key_01", true, false},
		{"f00000000000000b", "key_02", true, false},
		{"bk_live_AAAA…1111", "key_01", true, false},
		{"bk_live_BBBB…2222", "", false, true}, // two keys share the hint
		{"key_99", "key_99", false, false},     // unknown: as given
		{fullKey, secret.Fingerprint(fullKey), false, false},
	} {
		id, k, err := alerts.ResolveSilenceKey(tt.given, reg)
		if id != tt.want || (k != nil) != tt.found || (err != nil) != tt.err {
			t.Errorf("ResolveSilenceKey(%q) = %q, %v, %v", tt.given, id, k, err)
		}
	}
}
