package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/kafka-go"

	"github.com/auditwatch/auditwatch/alerts/slack/slacktest"
	"github.com/auditwatch/auditwatch/deploy/testenv"
	"github.com/auditwatch/auditwatch/ingest/secret"
)

// leakKeys are the secrets of the key-leak test, one per place a gateway (or
// a hostile producer) may put a key, each distinct so that a leak names its
// way in. Deterministic: the same seed gives the same keys.
type leakKeys map[string]string

func newLeakKeys(names ...string) leakKeys {
	r := rand.New(rand.NewSource(20261127))
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	body := func() string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = chars[r.Intn(len(chars))]
		}
		return string(b)
	}
	k := leakKeys{}
	for _, n := range names {
		if strings.HasPrefix(n, "bearer") {
			k[n] = body() // a bearer token that is no Brokeret key
		} else {
			k[n] = "bk_live_" + body()
		}
	}
	return k
}

// needles are what no output may contain: each full secret and the middle
// 16 characters of it (no hint shows those: a partial leak is a leak too).
func (k leakKeys) needles() map[string]string {
	out := map[string]string{}
	for name, s := range k {
		out[s] = name + " (full)"
		m := len(s) / 2
		out[s[m-8:m+8]] = name + " (middle 16 characters)"
	}
	return out
}

// find returns a description of every needle in text ("" when none), naming
// the secrets by hint only.
func (k leakKeys) find(where, text string) []string {
	var found []string
	lower := strings.ToLower(text)
	for n, desc := range k.needles() {
		if strings.Contains(lower, strings.ToLower(n)) {
			found = append(found, fmt.Sprintf("%s: %s, %s", where, desc, secret.Hint(n)))
		}
	}
	slices.Sort(found)
	return found
}

// TestNoKeyLeaksAnywhere produces events with a full key in every field
// through real Kafka, plus malformed messages that become dead letters,
// runs the real ingest, keys import, detect and the alert dispatcher
// (against the local Slack server), all with keyed fingerprints, and then
// searches every column of every table, every log line and every Slack
// payload for the keys. It also checks that import and ingest fingerprint
// alike under the secret, and that too-old events are dead-lettered.
func TestNoKeyLeaksAnywhere(t *testing.T) {
	s := newStack(t, testenv.ClickHouseAddr(t), 2)
	conn := testenv.Connect(t, s.chAddr)
	ctx := context.Background()
	srv := slacktest.NewServer(t)
	srv.RequireToken(latencyToken)

	k := newLeakKeys("api_key", "key_id", "key_id_bearer", "account_id", "oauth_client_id", "path", "query", "fragment",
		"user_agent", "bearer_user_agent", "origin", "error_code", "request_id", "escaped_user_agent",
		"method", "client_ip", "env", "auth_method", "ts", "too_old", "not_json", "invalid_utf8", "too_large", "cut_by_limit",
		"wrong_type", "message_key", "escaped_not_json", "registry_only")

	// Configuration shared by every command: keyed fingerprints.
	dir := t.TempDir()
	const fpSecret = "keyleak-test-fingerprint-secret-0001"
	keyFile := filepath.Join(dir, "fingerprint.key")
	if err := os.WriteFile(keyFile, []byte(fpSecret+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "slack.token")
	if err := os.WriteFile(tokenFile, []byte(latencyToken), 0o400); err != nil {
		t.Fatal(err)
	}
	rulesDir := filepath.Join(dir, "rules")
	if err := os.MkdirAll(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One rule putting every free-text field of the probe events into
	// findings, and so into Slack messages.
	rule := `rules:
  - id: leak-probe
    name: Leak probe
    severity: high
    schedule: "@every 2s"
    type: threshold
    filter: {client_ip: 198.51.100.77}
    group_by: [key_id, account_id, oauth_client_id, user_agent, origin, error_code, path]
    window: 10m
    query_delay: 0s
    threshold: 1
    cooldown: 1h
`
	if err := os.WriteFile(filepath.Join(rulesDir, "probe.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	ingestPort, detectPort := freePort(t), freePort(t)
	cfg := filepath.Join(dir, "auditwatch.yaml")
	body := fmt.Sprintf(`log: {level: debug, format: text}
clickhouse: {addr: [%q], database: %s}
kafka: {brokers: [%s], topic: %s, group_id: %s, max_wait: 100ms, session_timeout: 6s}
ingest: {batch_max_rows: 1000, flush_interval: 300ms, max_message_bytes: 4096, dead_letter_raw_bytes: 1024}
retention: {check_interval: 0s}
http: {listen: "127.0.0.1:%d"}
detect: {rules_dir: %q, http_listen: "127.0.0.1:%d", idle_timeout: 2s, max_wait: 5s}
alerts:
  enabled: true
  notifier: slack
  slack: {api_url: %q, allow_custom_api_url: true, token_file: %q}
  default_channel: "#sec-alerts"
  poll_interval: 1s
keys: {fingerprint_key_file: %q}
`, s.chAddr, s.db, strings.Join(s.brokers, ","), s.topic, s.group, ingestPort, rulesDir, detectPort, srv.APIURL(), tokenFile, keyFile)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	// The registry, through the command: one key by id, one known only by
	// its key (its id becomes its fingerprint), one only in the registry.
	registry := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(registry, []byte(`keys:
  - {id: key_leak_api, api_key: `+k["api_key"]+`, created_at: 2026-01-01}
  - {api_key: `+k["key_id"]+`, created_at: 2026-01-01}
  - {id: key_leak_registry_only, api_key: `+k["registry_only"]+`, created_at: 2026-01-01}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var importOut, importErr bytes.Buffer
	if code := run(ctx, []string{"keys", "import", registry, "--config", cfg}, &importOut, &importErr); code != 0 {
		t.Fatalf("keys import: exit %d\n%s%s", code, secret.Redact(importOut.String()), secret.Redact(importErr.String()))
	}
	fpr := secret.NewFingerprinter([]byte(fpSecret))
	if !strings.Contains(importOut.String(), "key check "+fpr.Check()) {
		t.Fatalf("keys import did not use the fingerprint secret: %s", secret.Redact(importOut.String()))
	}

	// The messages.
	now := time.Now().UTC()
	ts := now.Add(-30 * time.Second).Format(time.RFC3339Nano)
	ev := func(id, extra string) string {
		return `{"ts":"` + ts + `","request_id":"` + id + `","method":"GET","path":"/v1/orders","status":401,"client_ip":"198.51.100.77"` + extra + `}`
	}
	escaped := func(key string) string { // bk_live_… with JSON escapes for 'b' and '_'
		return `\u0062k\u005f` + key[3:]
	}
	type msg struct {
		key, value []byte
	}
	valid := []string{
		ev("req-api", `,"api_key":"`+k["api_key"]+`"`),
		ev("req-key-id", `,"key_id":"`+k["key_id"]+`"`),
		ev("req-key-id-bearer", `,"key_id":"Bearer `+k["key_id_bearer"]+`"`),
		ev("req-account", `,"account_id":"`+k["account_id"]+`"`),
		ev("req-oauth", `,"oauth_client_id":"`+k["oauth_client_id"]+`"`),
		strings.Replace(ev("req-path", ""), `"/v1/orders"`, `"/v1/keys/`+k["path"]+`/usage"`, 1),
		strings.Replace(ev("req-query", ""), `"/v1/orders"`, `"/v1/orders?api_key=`+k["query"]+`"`, 1),
		strings.Replace(ev("req-fragment", ""), `"/v1/orders"`, `"/v1/orders#`+k["fragment"]+`"`, 1),
		ev("req-ua", `,"user_agent":"brokeret-go/1.4.0 `+k["user_agent"]+`"`),
		ev("req-bearer-ua", `,"user_agent":"curl/8.5 Authorization: Bearer `+k["bearer_user_agent"]+`"`),
		ev("req-origin", `,"origin":"https://`+k["origin"]+`.example"`),
		ev("req-error", `,"error_code":"`+k["error_code"]+`"`),
		ev("req-"+k["request_id"], ""),
		ev("req-escaped", `,"user_agent":"`+escaped(k["escaped_user_agent"])+`"`),
	}
	old := strings.Replace(ev("req-too-old", `,"api_key":"`+k["too_old"]+`"`), ts, now.AddDate(0, 0, -200).Format(time.RFC3339), 1)
	dead := []msg{
		{nil, []byte(strings.Replace(ev("dl-method", ""), `"GET"`, `"`+k["method"]+`"`, 1))},
		{nil, []byte(strings.Replace(ev("dl-ip", ""), `"198.51.100.77"`, `"`+k["client_ip"]+`"`, 1))},
		{nil, []byte(ev("dl-env", `,"env":"`+k["env"]+`"`))},
		{nil, []byte(ev("dl-auth", `,"auth_method":"`+k["auth_method"]+`"`))},
		{nil, []byte(strings.Replace(ev("dl-ts", ""), `"`+ts+`"`, `"`+k["ts"]+`"`, 1))},
		{nil, []byte(old)},
		{nil, []byte(`{"request_id":"dl-truncated","user_agent":"` + k["not_json"])},
		{nil, []byte("{\"request_id\":\"dl-utf8\",\"user_agent\":\"\xff " + k["invalid_utf8"] + "\"}")},
		{nil, []byte(`{"api_key":"` + k["too_large"] + `","pad":"` + strings.Repeat("x", 990-len(k["too_large"])) + k["cut_by_limit"] + strings.Repeat("y", 5000) + `"}`)},
		{nil, []byte(strings.Replace(ev("dl-wrong-type", ""), `"status":401`, `"status":"`+k["wrong_type"]+`"`, 1))},
		{[]byte(k["message_key"]), []byte(`not json at all`)},
		{nil, []byte(`{"request_id":"dl-escaped","user_agent":"` + escaped(k["escaped_not_json"]))},
	}
	w := latencyWriter(s.brokers, s.topic)
	defer w.Close()
	var msgs []kafka.Message
	for _, v := range valid {
		msgs = append(msgs, kafka.Message{Key: []byte("probe"), Value: []byte(v)})
	}
	for _, d := range dead {
		msgs = append(msgs, kafka.Message{Key: d.key, Value: d.value})
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, m := range msgs {
		if err := w.WriteMessages(pctx, m); err != nil {
			t.Fatalf("produce: %v", secret.Redact(err.Error()))
		}
	}

	// Ingest, detect, deliver.
	ing := startMasked(t, ingestPort, "ingest", "--config", cfg)
	det := startMasked(t, detectPort, "detect", "--config", cfg)
	var nRows, nDead uint64
	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		nRows = testenv.Count(t, conn, "SELECT uniqExact(request_id) FROM "+s.db+".access_log")
		nDead = testenv.Count(t, conn, "SELECT uniqExact(partition, offset) FROM "+s.db+".ingest_errors")
		return nRows+nDead == uint64(len(msgs)), fmt.Sprintf("%d rows and %d dead letters of %d messages", nRows, nDead, len(msgs))
	})
	testenv.Eventually(t, 120*time.Second, func() (bool, string) {
		groups := testenv.Count(t, conn, "SELECT uniqExact(group_key) FROM "+s.db+".findings WHERE rule_id = 'leak-probe'")
		sent := testenv.Count(t, conn, "SELECT uniqExact(group_key) FROM "+s.db+".alert_deliveries WHERE rule_id = 'leak-probe' AND outcome = 'sent'")
		return groups >= 8 && sent == groups, fmt.Sprintf("%d groups found, %d delivered to Slack", groups, sent)
	})
	time.Sleep(3 * time.Second) // a few more ticks and polls: whatever they log or send is searched too
	stopMasked(t, det)
	stopMasked(t, ing)

	var leaks []string

	// 1. Every column of every table of the database.
	hits := searchDatabase(t, conn, s.db, k.needles())
	for col, descs := range hits {
		for _, d := range descs {
			leaks = append(leaks, col+": "+d)
		}
	}
	// 2. Logs and command output.
	leaks = append(leaks, k.find("ingest log", ing.log.String())...)
	leaks = append(leaks, k.find("detect log", det.log.String())...)
	leaks = append(leaks, k.find("keys import output", importOut.String()+importErr.String())...)
	// 3. Slack: every request as received (body, text, blocks).
	var slackText strings.Builder
	for _, r := range srv.Requests() {
		fmt.Fprintf(&slackText, "%s\n%s\n%s\n%s\n", r.Body, r.Text, r.Blocks, r.BlocksText())
	}
	leaks = append(leaks, k.find("slack", slackText.String())...)
	if len(leaks) > 0 {
		t.Fatalf("%d leaks:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}

	if nRows != uint64(len(valid)) || nDead != uint64(len(dead)) {
		t.Errorf("%d rows and %d dead letters, want %d and %d", nRows, nDead, len(valid), len(dead))
	}

	// The searches can see what they look for: the hints of the probes are
	// where the masker put them.
	for _, c := range []struct{ where, text, hint string }{
		{"slack", slackText.String(), secret.Hint(k["user_agent"])},
		{"slack", slackText.String(), secret.Hint(k["path"])},
	} {
		if !strings.Contains(c.text, c.hint) {
			t.Errorf("%s does not show the hint %s: the search may not see the data", c.where, c.hint)
		}
	}
	for _, c := range []struct{ query, hint string }{
		{"SELECT count() FROM " + s.db + ".access_log WHERE user_agent = concat('brokeret-go/1.4.0 ', ?)", secret.Hint(k["user_agent"])},
		{"SELECT count() FROM " + s.db + ".access_log WHERE path = concat('/v1/keys/', ?, '/usage') AND route = '/v1/keys/{id}/usage'", secret.Hint(k["path"])},
		{"SELECT count() FROM " + s.db + ".access_log WHERE account_id = ?", secret.Hint(k["account_id"])},
		{"SELECT count() FROM " + s.db + ".ingest_errors WHERE position(raw, ?) > 0 AND reason = 'bad_value' AND field = 'method'", secret.Hint(k["method"])},
		{"SELECT count() FROM " + s.db + ".ingest_errors WHERE message_key = ?", secret.Hint(k["message_key"])},
	} {
		if n := testenv.Count(t, conn, c.query, c.hint); n != 1 {
			t.Errorf("%s [%s]: %d rows, want 1", c.query, c.hint, n)
		}
	}

	// Dead letters, with too_old for the event older than the retention.
	var reasons []string
	rows, err := conn.Query(ctx, "SELECT DISTINCT reason FROM "+s.db+".ingest_errors ORDER BY reason")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, r)
	}
	rows.Close()
	if want := []string{"bad_timestamp", "bad_value", "invalid_utf8", "not_json", "too_large", "too_old", "wrong_type"}; !slices.Equal(reasons, want) {
		t.Errorf("dead-letter reasons %v, want %v", reasons, want)
	}

	// Keyed fingerprints: ingest and import agree, and differ from plain.
	var rowFP, regFP, keyIDRow, keyIDReg string
	if err := conn.QueryRow(ctx, "SELECT key_fingerprint FROM "+s.db+".access_log WHERE request_id = 'req-api'").Scan(&rowFP); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT key_fingerprint FROM "+s.db+".keys FINAL WHERE key_id = 'key_leak_api'").Scan(&regFP); err != nil {
		t.Fatal(err)
	}
	if rowFP != fpr.Fingerprint(k["api_key"]) || rowFP != regFP || rowFP == secret.Fingerprint(k["api_key"]) {
		t.Errorf("api_key: access_log fingerprint %s, registry %s; want both the keyed %s (plain would be %s)",
			rowFP, regFP, fpr.Fingerprint(k["api_key"]), secret.Fingerprint(k["api_key"]))
	}
	if err := conn.QueryRow(ctx, "SELECT concat(key_id, '/', key_id_source) FROM "+s.db+".access_log WHERE request_id = 'req-key-id'").Scan(&keyIDRow); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT key_id FROM "+s.db+".keys FINAL WHERE key_fingerprint = ?", fpr.Fingerprint(k["key_id"])).Scan(&keyIDReg); err != nil {
		t.Fatal(err)
	}
	if keyIDRow != keyIDReg+"/fingerprint" {
		t.Errorf("a key sent as key_id: access_log key_id %s, registry id %s; want the keyed fingerprint in both", keyIDRow, keyIDReg)
	}
	t.Logf("searched %d columns, the ingest and detect logs (%d and %d bytes) and %d Slack requests for %d secrets",
		searchedColumns, ing.log.Len(), det.log.Len(), len(srv.Requests()), len(k))
}

// startMasked starts the binary with args, keeping its output; on failure
// the test prints the output's tail masked (secret.Redact), since it is
// about keys that must not be printed (startIngest prints it as is).
func startMasked(t *testing.T, port int, args ...string) *proc {
	t.Helper()
	p := &proc{port: port, log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log (masked):\n%s", args[0], secret.Redact(tail(p.log.String(), 4000)))
		}
	})
	return p
}

// stopMasked sends SIGTERM and requires a clean exit.
func stopMasked(t *testing.T, p *proc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", p.cmd.Args[1], err)
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not exit within 40s of SIGTERM", p.cmd.Args[1])
	}
}

// searchedColumns counts the columns searchDatabase read (for the log).
var searchedColumns int

// searchDatabase searches every column of every table of db that can hold
// text (String, Nullable, Array and aggregate states of strings) for each
// needle, case-insensitively, and returns table.column → descriptions of
// the needles found. A column of a text type it does not know fails the
// test, so that a new column cannot escape the search.
func searchDatabase(t *testing.T, conn driver.Conn, db string, needles map[string]string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	type col struct{ table, name, typ string }
	var cols []col
	views := map[string]bool{} // views read other tables, which are searched themselves
	trows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine IN ('View', 'MaterializedView')", db)
	if err != nil {
		t.Fatal(err)
	}
	for trows.Next() {
		var name string
		if err := trows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		views[name] = true
	}
	trows.Close()
	rows, err := conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name", db)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.name, &c.typ); err != nil {
			t.Fatal(err)
		}
		if !views[c.table] {
			cols = append(cols, c)
		}
	}
	rows.Close()
	if len(cols) < 50 {
		t.Fatalf("only %d columns in %s: the search would prove little", len(cols), db)
	}
	ns := make([]string, 0, len(needles))
	for n := range needles {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	out := map[string][]string{}
	searchedColumns = 0
	for _, c := range cols {
		if !strings.Contains(c.typ, "String") {
			continue // numbers, dates: no text
		}
		q := "`" + c.name + "`"
		var expr string
		switch {
		case c.typ == "String" || c.typ == "LowCardinality(String)" || strings.HasPrefix(c.typ, "FixedString("):
			expr = q
		case c.typ == "Nullable(String)":
			expr = "ifNull(" + q + ", '')"
		case c.typ == "Array(String)" || c.typ == "Array(LowCardinality(String))":
			expr = "arrayStringConcat(" + q + ", '\\n')"
		case strings.HasPrefix(c.typ, "AggregateFunction(topK") || strings.HasPrefix(c.typ, "AggregateFunction(groupArray") || strings.HasPrefix(c.typ, "AggregateFunction(groupUniqArray"):
			expr = "arrayStringConcat(finalizeAggregation(" + q + "), '\\n')"
		case strings.HasPrefix(c.typ, "AggregateFunction(") && strings.HasSuffix(c.typ, ", String)"):
			expr = "toString(finalizeAggregation(" + q + "))"
		default:
			t.Fatalf("%s.%s: type %s may hold text and the search does not know it; teach searchDatabase", c.table, c.name, c.typ)
		}
		parts := make([]string, len(ns))
		args := make([]any, len(ns))
		for i, n := range ns {
			parts[i] = fmt.Sprintf("countIf(positionCaseInsensitive(%s, ?) > 0)", expr)
			args[i] = n
		}
		query := "SELECT " + strings.Join(parts, ", ") + " FROM " + db + ".`" + c.table + "`"
		counts := make([]uint64, len(ns))
		dst := make([]any, len(ns))
		for i := range counts {
			dst[i] = &counts[i]
		}
		if err := conn.QueryRow(ctx, query, args...).Scan(dst...); err != nil {
			t.Fatalf("search %s.%s: %v", c.table, c.name, secret.Redact(err.Error()))
		}
		searchedColumns++
		for i, n := range counts {
			if n > 0 {
				out[c.table+"."+c.name] = append(out[c.table+"."+c.name], fmt.Sprintf("%d rows hold %s, %s", n, needles[ns[i]], secret.Hint(ns[i])))
			}
		}
	}
	return out
}

// TestKeysConsumeRefusesKeyedFingerprints: until the lifecycle consumer
// takes the fingerprint secret, `keys consume` refuses to run with one
// rather than store fingerprints that join nothing.
func TestKeysConsumeRefusesKeyedFingerprints(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "fp.key")
	if err := os.WriteFile(keyFile, []byte("consume-test-fingerprint-secret-01"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("keys: {fingerprint_key_file: "+keyFile+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"keys", "consume", "--config", cfg}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "cannot key fingerprints") {
		t.Fatalf("exit %d, stderr %q: want a refusal", code, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), "consume-test-fingerprint-secret") {
		t.Fatal("the secret was printed")
	}
}
