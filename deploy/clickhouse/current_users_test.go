package grants_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// currentUsersFile is grants.sql as a users file, for current servers
// without a writable access storage (deploy/services/clickhouse-current.sh).
var currentUsersFile = filepath.Join("current", "users.d", "auditwatch.xml")

// accessSpec is what grants.sql or the users file defines: users with their
// grants, profile and default database, and settings profiles.
type accessSpec struct {
	users    map[string]userSpec
	profiles map[string]map[string]string // profile -> setting -> "value" or "value CONST" or "value MAX m"
}

type userSpec struct {
	grants    []string // "GRANT … ON …", sorted
	profile   string   // "default" when none is named
	defaultDB string
	local     bool   // localhost only (HOST LOCAL; ::1 and 127.0.0.1)
	sha256    string // users file only
}

var spaces = regexp.MustCompile(`\s+`)

func normSpace(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// parseGrantsSQL reads the users, grants and profiles of grants.sql with
// {{DB}} = db and HOST {{HOSTS}} = LOCAL (grants.sh's default).
func parseGrantsSQL(t *testing.T, sql, db string) accessSpec {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(sql, "\n") {
		if i := strings.Index(l, "--"); i >= 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	r := strings.NewReplacer("{{DB}}", db, "{{HOSTS}}", "LOCAL", "{{ANALYST_HOSTS}}", "LOCAL")
	spec := accessSpec{users: map[string]userSpec{}, profiles: map[string]map[string]string{}}
	createUser := regexp.MustCompile(`^CREATE USER OR REPLACE (\w+) IDENTIFIED WITH sha256_hash BY '[^']*' HOST (\w+) DEFAULT DATABASE (\w+)(?: SETTINGS PROFILE '(\w+)')?$`)
	createProfile := regexp.MustCompile(`^CREATE SETTINGS PROFILE OR REPLACE (\w+) SETTINGS (.*)$`)
	grant := regexp.MustCompile(`^(GRANT .* ON \S+) TO (\w+)$`)
	setting := regexp.MustCompile(`^(\w+) = (\S+)(?: (CONST|MAX \S+|MIN \S+))?$`)
	for _, st := range strings.Split(strings.Join(lines, "\n"), ";") {
		st = normSpace(r.Replace(st))
		switch {
		case st == "":
		case createUser.MatchString(st):
			m := createUser.FindStringSubmatch(st)
			u := spec.users[m[1]]
			u.local, u.defaultDB, u.profile = m[2] == "LOCAL", m[3], m[4]
			if u.profile == "" {
				u.profile = "default"
			}
			spec.users[m[1]] = u
		case createProfile.MatchString(st):
			m := createProfile.FindStringSubmatch(st)
			p := map[string]string{}
			for _, item := range strings.Split(m[2], ",") {
				s := setting.FindStringSubmatch(strings.TrimSpace(item))
				if s == nil {
					t.Fatalf("grants.sql: profile %s: cannot read the setting %q", m[1], item)
				}
				p[s[1]] = strings.TrimSpace(s[2] + " " + s[3])
			}
			spec.profiles[m[1]] = p
		case grant.MatchString(st):
			m := grant.FindStringSubmatch(st)
			u := spec.users[m[2]]
			u.grants = append(u.grants, m[1])
			spec.users[m[2]] = u
		case strings.HasPrefix(st, "CREATE DATABASE "), strings.HasPrefix(st, "DROP USER "):
		default:
			t.Fatalf("grants.sql: a statement this test does not know, so cannot compare with %s: %q", currentUsersFile, st)
		}
	}
	for name, u := range spec.users {
		slices.Sort(u.grants)
		spec.users[name] = u
	}
	return spec
}

// xmlNode is any element of a users file.
type xmlNode struct {
	XMLName xml.Name
	Text    string    `xml:",chardata"`
	Nodes   []xmlNode `xml:",any"`
}

func (n xmlNode) child(name string) (xmlNode, bool) {
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			return c, true
		}
	}
	return xmlNode{}, false
}

func (n xmlNode) text(name string) string {
	c, _ := n.child(name)
	return strings.TrimSpace(c.Text)
}

// parseUsersXML reads the users, grants and profiles of a users file.
func parseUsersXML(t *testing.T, b []byte) accessSpec {
	t.Helper()
	var root xmlNode
	if err := xml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s: %v", currentUsersFile, err)
	}
	spec := accessSpec{users: map[string]userSpec{}, profiles: map[string]map[string]string{}}
	profiles, _ := root.child("profiles")
	for _, p := range profiles.Nodes {
		settings := map[string]string{}
		constraints, _ := p.child("constraints")
		for _, s := range p.Nodes {
			if s.XMLName.Local == "constraints" {
				continue
			}
			v := strings.TrimSpace(s.Text)
			if c, ok := constraints.child(s.XMLName.Local); ok {
				if _, ok := c.child("const"); ok {
					v += " CONST"
				}
				if m := c.text("max"); m != "" {
					v += " MAX " + m
				}
				if m := c.text("min"); m != "" {
					v += " MIN " + m
				}
			}
			settings[s.XMLName.Local] = v
		}
		for _, c := range constraints.Nodes {
			if _, ok := p.child(c.XMLName.Local); !ok {
				t.Errorf("%s: profile %s constrains %s without setting it", currentUsersFile, p.XMLName.Local, c.XMLName.Local)
			}
		}
		spec.profiles[p.XMLName.Local] = settings
	}
	users, _ := root.child("users")
	for _, u := range users.Nodes {
		var ips []string
		networks, _ := u.child("networks")
		for _, ip := range networks.Nodes {
			ips = append(ips, ip.XMLName.Local+"="+strings.TrimSpace(ip.Text))
		}
		slices.Sort(ips)
		us := userSpec{profile: u.text("profile"), defaultDB: u.text("default_database"), sha256: u.text("password_sha256_hex"),
			local: slices.Equal(ips, []string{"ip=127.0.0.1", "ip=::1"})}
		grants, _ := u.child("grants")
		for _, q := range grants.Nodes {
			us.grants = append(us.grants, normSpace(q.Text))
		}
		slices.Sort(us.grants)
		spec.users[u.XMLName.Local] = us
	}
	return spec
}

// compareAccess lists every difference between grants.sql and the users
// file: users, their grants, profile, default database, hosts, and the
// profiles' settings and constraints.
func compareAccess(sql, file accessSpec) []string {
	var diffs []string
	for name, want := range sql.users {
		got, ok := file.users[name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("user %s: in grants.sql, not in the users file", name))
			continue
		}
		for _, g := range want.grants {
			if !slices.Contains(got.grants, g) {
				diffs = append(diffs, fmt.Sprintf("user %s: grants.sql has %q, the users file not", name, g))
			}
		}
		for _, g := range got.grants {
			if !slices.Contains(want.grants, g) {
				diffs = append(diffs, fmt.Sprintf("user %s: the users file has %q, grants.sql not", name, g))
			}
		}
		if got.profile != want.profile {
			diffs = append(diffs, fmt.Sprintf("user %s: profile %q in the users file, %q in grants.sql", name, got.profile, want.profile))
		}
		if got.defaultDB != want.defaultDB {
			diffs = append(diffs, fmt.Sprintf("user %s: default database %q in the users file, %q in grants.sql", name, got.defaultDB, want.defaultDB))
		}
		if got.local != want.local {
			diffs = append(diffs, fmt.Sprintf("user %s: localhost only in the users file %v, in grants.sql %v", name, got.local, want.local))
		}
	}
	for name := range file.users {
		if _, ok := sql.users[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("user %s: in the users file, not in grants.sql", name))
		}
	}
	for name, want := range sql.profiles {
		got, ok := file.profiles[name]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("profile %s: in grants.sql, not in the users file", name))
			continue
		}
		for k := range mergeKeys(want, got) {
			if want[k] != got[k] {
				diffs = append(diffs, fmt.Sprintf("profile %s: %s is %q in the users file, %q in grants.sql", name, k, got[k], want[k]))
			}
		}
	}
	for name := range file.profiles {
		if _, ok := sql.profiles[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("profile %s: in the users file, not in grants.sql", name))
		}
	}
	slices.Sort(diffs)
	return diffs
}

func mergeKeys(a, b map[string]string) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

// TestCurrentUsersFileMatchesGrants keeps current/users.d/auditwatch.xml (the
// users of the current-ClickHouse test server) in step with grants.sql: the
// same users with the same GRANT statements, profiles, default database and
// hosts, and the same settings and constraints in the profiles; its dev
// passwords are "<user>_dev", as in the 18.16 users.d.
func TestCurrentUsersFileMatchesGrants(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "deploy", "clickhouse")
	sqlText, err := os.ReadFile(filepath.Join(dir, "grants.sql"))
	if err != nil {
		t.Fatal(err)
	}
	xmlText, err := os.ReadFile(filepath.Join(dir, currentUsersFile))
	if err != nil {
		t.Fatal(err)
	}
	want := parseGrantsSQL(t, string(sqlText), "auditwatch")
	got := parseUsersXML(t, xmlText)
	if len(want.users) != len(grantUsers) || len(want.profiles) < 2 {
		t.Fatalf("read %d users and %d profiles from grants.sql, want %d users and at least 2 profiles: the patterns no longer match it",
			len(want.users), len(want.profiles), len(grantUsers))
	}
	var ngrants int
	for _, u := range want.users {
		ngrants += len(u.grants)
	}
	if ngrants < 20 {
		t.Fatalf("read %d GRANT statements from grants.sql: the pattern no longer matches it", ngrants)
	}
	for _, d := range compareAccess(want, got) {
		t.Error(d)
	}
	for name, u := range got.users {
		if u.sha256 != sha256Hex(name+"_dev") {
			t.Errorf("user %s: password_sha256_hex is not the SHA-256 of its dev password", name)
		}
	}

	// The comparison sees a difference: a grant removed from grants.sql, a
	// constraint relaxed, a profile dropped from a user.
	for _, m := range []struct{ name, old, new, want string }{
		{"grant removed", "GRANT SELECT ON {{DB}}.keys TO aw_rules;", "", `user aw_rules: the users file has "GRANT SELECT ON auditwatch.keys"`},
		{"grant widened", "GRANT SELECT ON {{DB}}.key_events TO aw_rules;", "GRANT SELECT ON {{DB}}.* TO aw_rules;", `user aw_rules: grants.sql has "GRANT SELECT ON auditwatch.*"`},
		{"constraint relaxed", "max_rows_to_read = 500000000 MAX 500000000", "max_rows_to_read = 500000000", `profile aw_rules_profile: max_rows_to_read is "500000000 MAX 500000000" in the users file, "500000000" in grants.sql`},
		{"profile dropped", " SETTINGS PROFILE 'aw_analyst_profile'", "", `user aw_analyst: profile "aw_analyst_profile" in the users file, "default" in grants.sql`},
	} {
		t.Run("negative control: "+m.name, func(t *testing.T) {
			mutated := strings.Replace(string(sqlText), m.old, m.new, 1)
			if mutated == string(sqlText) {
				t.Fatalf("grants.sql no longer holds %q", m.old)
			}
			diffs := compareAccess(parseGrantsSQL(t, mutated, "auditwatch"), got)
			if !slices.ContainsFunc(diffs, func(d string) bool { return strings.HasPrefix(d, m.want) }) {
				t.Fatalf("differences %q, want one starting with %q", diffs, m.want)
			}
		})
	}
}
