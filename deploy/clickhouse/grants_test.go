package grants_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditwatch/auditwatch/deploy/migrations"
	"github.com/auditwatch/auditwatch/deploy/testenv"
)

var grantUsers = []string{"INGEST", "DETECT", "RULES", "KEYS", "RETENTION", "MIGRATE", "ANALYST"}

// renderGrants runs grants.sh with env (and nothing else of the AW_*
// environment) and returns its stdout, stderr and error.
func renderGrants(t *testing.T, env map[string]string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(testenv.RepoRoot(t), "deploy", "clickhouse", "grants.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func passwords() map[string]string {
	env := map[string]string{}
	for _, u := range grantUsers {
		env["AW_"+u+"_PASSWORD"] = "pw-" + strings.ToLower(u) + "-Zq81"
	}
	return env
}

func TestGrantsScript(t *testing.T) {
	t.Run("refuses a missing password and prints no SQL", func(t *testing.T) {
		env := passwords()
		delete(env, "AW_RULES_PASSWORD")
		out, errOut, err := renderGrants(t, env)
		if err == nil || out != "" {
			t.Fatalf("want a refusal and no SQL, got err %v and %d bytes", err, len(out))
		}
		if !strings.Contains(errOut, "AW_RULES_PASSWORD") || strings.Contains(errOut, "Zq81") {
			t.Fatalf("stderr should name the missing variable and no password: %q", errOut)
		}
	})
	t.Run("password from a file", func(t *testing.T) {
		env := passwords()
		delete(env, "AW_KEYS_PASSWORD")
		f := filepath.Join(t.TempDir(), "keys.pw")
		if err := os.WriteFile(f, []byte("pw-keys-Zq81\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env["AW_KEYS_PASSWORD_FILE"] = f
		fromFile, _, err := renderGrants(t, env)
		if err != nil {
			t.Fatal(err)
		}
		fromEnv, _, _ := renderGrants(t, passwords())
		if fromFile != fromEnv {
			t.Fatal("a password from a file (with its newline) renders differently from the same password in the environment")
		}
	})
	t.Run("rejects a database name that is not an identifier", func(t *testing.T) {
		env := passwords()
		env["AW_CLICKHOUSE_DATABASE"] = "auditwatch; DROP DATABASE x"
		if out, _, err := renderGrants(t, env); err == nil || out != "" {
			t.Fatalf("accepted; printed %d bytes", len(out))
		}
	})
	t.Run("renders hashes, hosts and database", func(t *testing.T) {
		env := passwords()
		env["AW_CLICKHOUSE_DATABASE"] = "aw_prod"
		env["AW_CLICKHOUSE_CLIENT_HOSTS"] = "IP '10.20.0.0/16'"
		out, _, err := renderGrants(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "Zq81") {
			t.Fatal("the rendered SQL holds a clear-text password")
		}
		if m := regexp.MustCompile(`\{\{[A-Z_0-9]+\}\}`).FindString(out); m != "" {
			t.Fatalf("placeholder %s left", m)
		}
		if n := strings.Count(out, "IDENTIFIED WITH sha256_hash BY '"); n != len(grantUsers) {
			t.Fatalf("%d users with a sha256 hash, want %d", n, len(grantUsers))
		}
		// sha256("pw-ingest-Zq81")
		if !strings.Contains(out, "aw_ingest IDENTIFIED WITH sha256_hash BY '"+sha256Hex("pw-ingest-Zq81")+"'") {
			t.Fatal("aw_ingest's hash is not the SHA-256 of its password")
		}
		if strings.Count(out, "HOST IP '10.20.0.0/16'") != len(grantUsers) || strings.Contains(out, "auditwatch.access_log") || !strings.Contains(out, "ON aw_prod.access_log") {
			t.Fatal("hosts or database not applied to every user and grant")
		}
	})
	t.Run("current ClickHouse parses it (chdb)", func(t *testing.T) {
		testenv.NeedChdb(t)
		sql, _, err := renderGrants(t, passwords())
		if err != nil {
			t.Fatal(err)
		}
		// chdb has no access management, so the statements are parsed
		// (EXPLAIN AST), not executed.
		cmd := exec.Command("python3", filepath.Join(testenv.RepoRoot(t), "deploy", "chdb", "run_sql.py"), "--parse-only")
		cmd.Stdin = strings.NewReader(sql)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "statements parsed OK") {
			t.Fatalf("chdb: %v\n%s", err, out)
		}
	})
}

// chdbAccessConfig lets chdb's default user manage access, so that
// access-control statements get past the privilege check.
const chdbAccessConfig = `<clickhouse>
  <user_directories>
    <users_xml><path>USERS</path></users_xml>
    <local_directory><path>ACCESS/</path></local_directory>
  </user_directories>
</clickhouse>`

const chdbAccessUsers = `<clickhouse>
  <profiles><default/></profiles>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota><access_management>1</access_management></default></users>
  <quotas><default/></quotas>
</clickhouse>`

// TestGrantsExecutedOnCurrentClickHouse runs grants.sql, after the schema
// it grants on, in current ClickHouse (chdb) statement by statement. chdb
// executes what it can and refuses the rest for lack of a writable access
// storage (its user_directories setting is ignored, so CREATE USER, ROLE
// and SETTINGS PROFILE have nowhere to go, and each GRANT then names an
// unknown user and each user an unknown profile): the test fails on any other error — a syntax error, an
// unknown table or privilege — and lists the statements it could not run,
// with the reason. chdb also runs every query as its default user, so the
// users themselves cannot be exercised there; TestPrivileges does that on
// 18.16.
func TestGrantsExecutedOnCurrentClickHouse(t *testing.T) {
	testenv.NeedChdb(t)
	grants, _, err := renderGrants(t, passwords())
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations.Load("auditwatch", migrations.Current)
	if err != nil {
		t.Fatal(err)
	}
	var sql strings.Builder
	sql.WriteString("CREATE DATABASE IF NOT EXISTS auditwatch;\n")
	for _, m := range ms {
		for _, st := range m.Statements {
			sql.WriteString(st + ";\n")
		}
	}
	schemaStatements := strings.Count(sql.String(), ";\n")
	sql.WriteString(grants)
	dir := t.TempDir()
	users := filepath.Join(dir, "users.xml")
	conf := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(users, []byte(chdbAccessUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	c := strings.NewReplacer("USERS", users, "ACCESS", filepath.Join(dir, "access")).Replace(chdbAccessConfig)
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", filepath.Join(testenv.RepoRoot(t), "deploy", "chdb", "run_sql.py"), "--report", "--config-file", conf)
	cmd.Stdin = strings.NewReader(sql.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run_sql.py --report: %v", err)
	}
	type outcome struct {
		N         int    `json:"n"`
		FirstLine string `json:"first_line"`
		OK        bool   `json:"ok"`
		Code      int    `json:"code"`
		Error     string `json:"error"`
	}
	var ran, grantsRan, notRun int
	reasons := map[int]string{
		514: "no writable access storage in chdb (ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND)",
		511: "the user or role it names could not be created (UNKNOWN_ROLE)",
		180: "the settings profile it names could not be created (THERE_IS_NO_PROFILE)",
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var o outcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("run_sql.py --report: %v: %q", err, line)
		}
		// Never log a password hash: only what precedes IDENTIFIED.
		what := o.FirstLine
		if i := strings.Index(what, " IDENTIFIED"); i >= 0 {
			what = what[:i] + " IDENTIFIED …"
		}
		switch {
		case o.OK:
			ran++
			if o.N > schemaStatements {
				grantsRan++
			}
		case o.N <= schemaStatements:
			t.Errorf("schema statement %d refused by current ClickHouse: %s: %s", o.N, what, o.Error)
		case reasons[o.Code] != "":
			notRun++
			t.Logf("not run in chdb: %s — %s", what, reasons[o.Code])
		default:
			t.Errorf("grants.sql statement %q refused by current ClickHouse (code %d): %s", what, o.Code, o.Error)
		}
	}
	if notRun == 0 || grantsRan == 0 {
		t.Errorf("want some grants.sql statements run and the access-control ones reported, got %d run, %d not run", grantsRan, notRun)
	}
	t.Logf("%d statements ran (%d of grants.sql), %d access-control statements could not run in chdb", ran, grantsRan, notRun)
}

// TestGrantsNameOnlyExistingTables keeps grants.sql in step with the schema:
// every table it grants on is created by the migrations, and every table
// the migrations create is granted to someone besides the analyst and the
// migrate user (or listed here as deliberately ungranted).
func TestGrantsNameOnlyExistingTables(t *testing.T) {
	ms, err := migrations.Load("auditwatch", migrations.Current)
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]bool{}
	re := regexp.MustCompile(`CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS auditwatch\.(\w+)`)
	for _, m := range ms {
		for _, s := range m.Statements {
			for _, g := range re.FindAllStringSubmatch(s, -1) {
				created[g[1]] = true
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "deploy", "clickhouse", "grants.sql"))
	if err != nil {
		t.Fatal(err)
	}
	granted := map[string]bool{}
	for _, g := range regexp.MustCompile(`(?m)^GRANT .* ON \{\{DB\}\}\.(\w+) TO (aw_\w+)`).FindAllStringSubmatch(string(b), -1) {
		if !created[g[1]] {
			t.Errorf("grants.sql grants on %s, which no migration creates", g[1])
		}
		granted[g[1]] = true
	}
	// Written by materialized views or by migrate only.
	ungranted := map[string]bool{"schema_migrations": true, "key_usage_mv": true, "key_usage_hourly": true, "key_usage_hourly_mv": true, "key_ip_daily": true, "key_ip_daily_mv": true}
	for table := range created {
		if !granted[table] && !ungranted[table] {
			t.Errorf("table %s is granted to no component in grants.sql", table)
		}
	}
	if len(granted) < 10 {
		t.Fatalf("found grants on %d tables; the pattern no longer matches grants.sql", len(granted))
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
