package summary

import (
	"encoding/csv"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// csvHeader is the header row of renderCSV.
var csvHeader = []string{"key_id", "key_hint", "env", "account_id", "owner", "status", "registered",
	"requests", "prev_requests", "change", "successes", "success_rate", "distinct_ips",
	"outside_requests", "outside_ips", "p50_latency_ms", "p95_latency_ms", "bytes_in", "bytes_out",
	"first_seen", "last_seen", "key_age_days", "rotation_due_days", "flags", "open_findings",
	"errors", "top_paths", "signals", "signal_rules", "latest_signal"}

// renderCSV writes one row per key under csvHeader. Numbers are plain
// (change and success_rate are ratios: 0.35 is +35%; change is "inf" for a
// key new in the period and empty when unknown); times are RFC 3339 in UTC,
// empty when unknown. Lists are space-separated ("code=n", "path=n"; a path
// without a count is written alone); spaces inside an item are written %20.
// Text cells that a spreadsheet would take for a formula (=, +, -, @) start
// with a "'". open_findings counts the alerted findings; signals counts the
// findings recorded but not alerted, signal_rules splits them by rule
// ("rule=n") and latest_signal is the summary of the latest; these are last
// so that earlier columns keep their places.
func renderCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for i := range r.Keys {
		k := &r.Keys[i]
		errs := sortedCounts(k.Errors)
		errItems := make([]string, len(errs))
		for j, c := range errs {
			errItems[j] = csvItem(c.Value) + "=" + strconv.FormatUint(c.N, 10)
		}
		pathItems := make([]string, len(k.TopPaths))
		for j, c := range k.TopPaths {
			pathItems[j] = csvItem(c.Value)
			if c.N > 0 {
				pathItems[j] += "=" + strconv.FormatUint(c.N, 10)
			}
		}
		ips := make([]string, len(k.OutsideIPs))
		for j, ip := range k.OutsideIPs {
			ips[j] = csvItem(ip)
		}
		sigItems := make([]string, len(k.Signals))
		for j, sg := range k.Signals {
			sigItems[j] = csvItem(sg.RuleID) + "=" + strconv.Itoa(sg.Count)
		}
		latest := ""
		if len(k.Signals) > 0 {
			latest = latestSignal(k).Summary
		}
		flags := make([]string, len(k.Flags))
		for j, f := range k.Flags {
			flags[j] = csvItem(f)
		}
		rotation := ""
		if hasRotation(k) {
			rotation = csvFloat(k.RotationDueDays)
		}
		age := ""
		if k.Registered {
			age = csvFloat(k.KeyAgeDays)
		}
		row := []string{
			csvText(k.KeyID), csvText(k.Hint), csvText(k.Env), csvText(k.AccountID), csvText(k.Owner),
			csvText(k.Status), strconv.FormatBool(k.Registered),
			strconv.FormatUint(k.Requests, 10), strconv.FormatUint(k.PrevRequests, 10), csvFloat(k.Change),
			strconv.FormatUint(k.Successes, 10), csvFloat(k.SuccessRate), strconv.FormatUint(k.DistinctIPs, 10),
			strconv.FormatUint(k.OutsideRequests, 10), csvText(strings.Join(ips, " ")),
			csvFloat(k.P50LatencyMS), csvFloat(k.P95LatencyMS),
			strconv.FormatUint(k.BytesIn, 10), strconv.FormatUint(k.BytesOut, 10),
			csvTime(k.FirstSeen), csvTime(k.LastSeen), age, rotation,
			csvText(strings.Join(flags, " ")), strconv.Itoa(len(k.OpenFindings)),
			csvText(strings.Join(errItems, " ")), csvText(strings.Join(pathItems, " ")),
			strconv.Itoa(k.SignalCount()), csvText(strings.Join(sigItems, " ")), csvText(latest),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvFloat formats v exactly; +Inf is "inf", NaN and -Inf are empty.
func csvFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case !isFinite(v):
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// csvItem makes s one item of a space-separated list.
func csvItem(s string) string {
	return strings.ReplaceAll(s, " ", "%20")
}

// csvText defuses text that a spreadsheet would evaluate as a formula.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
