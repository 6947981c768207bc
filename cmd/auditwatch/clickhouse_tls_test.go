package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditwatch/auditwatch/deploy/testenv"
)

// tlsClickHouse is a private ClickHouse server (the installed 18.16) with a
// TLS native port, started from the test: the shared server has none.
type tlsClickHouse struct {
	plainAddr, tlsAddr string
}

// startTLSClickHouse starts clickhouse-server with its native TLS port
// (tcp_port_secure) serving p's server certificate. With mutual, clients
// must present a certificate p's CA signed (verificationMode strict).
func startTLSClickHouse(t *testing.T, p *testPKI, mutual bool) tlsClickHouse {
	t.Helper()
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		t.Fatalf("clickhouse-server not installed (deploy/services/clickhouse.sh install): %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"conf/config.d", "data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"config.xml", "users.xml"} {
		b, err := os.ReadFile(filepath.Join("/etc/clickhouse-server", f))
		if err != nil {
			t.Fatalf("packaged clickhouse config: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "conf", f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	verify := "<verificationMode>none</verificationMode>"
	if mutual {
		verify = fmt.Sprintf(`<verificationMode>strict</verificationMode>
    <caConfig>%s</caConfig>
    <loadDefaultCAFile>false</loadDefaultCAFile>`, p.caFile)
	}
	tcp, secure := freePort(t), freePort(t)
	override := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <users_config>%s</users_config>
  <tcp_port_secure>%d</tcp_port_secure>
  <openSSL><server>
    <certificateFile>%s</certificateFile>
    <privateKeyFile>%s</privateKeyFile>
    <dhParamsFile remove="1"/>
    %s
  </server></openSSL>
</yandex>
`, filepath.Join(dir, "conf", "users.xml"), secure, p.serverCert, p.serverKey, verify)
	if err := os.WriteFile(filepath.Join(dir, "conf", "config.d", "tls.xml"), []byte(override), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "log", "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config-file="+filepath.Join(dir, "conf", "config.xml"), "--",
		"--path="+dir+"/data/", "--tmp_path="+dir+"/tmp/", "--user_files_path="+dir+"/user_files/",
		"--format_schema_path="+dir+"/format_schemas/", "--tcp_port="+strconv.Itoa(tcp),
		"--http_port="+strconv.Itoa(freePort(t)), "--interserver_http_port="+strconv.Itoa(freePort(t)),
		"--logger.log="+dir+"/log/server.log", "--logger.errorlog="+dir+"/log/error.log", "--logger.level=information")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clickhouse-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log", "error.log"))
			t.Logf("clickhouse error.log:\n%s", tail(string(b), 3000))
		}
	})
	s := tlsClickHouse{plainAddr: "127.0.0.1:" + strconv.Itoa(tcp), tlsAddr: "127.0.0.1:" + strconv.Itoa(secure)}
	// Both ports accept connections once the server is up (about 2 s).
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case <-done:
			t.Fatal("clickhouse-server exited")
		default:
		}
		for _, a := range []string{s.plainAddr, s.tlsAddr} {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.Close()
		}
		return true, ""
	})
	testenv.Connect(t, s.plainAddr) // answers queries, or the test fails
	return s
}

// chPing connects with the product's openClickHouse and reads the version.
func chPing(addr string, tls bool, files TLSFiles) (string, error) {
	conn, err := openClickHouse(ClickHouseConfig{Addr: []string{addr}, Username: "default", TLS: tls, TLSFiles: files,
		DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, MaxOpenConns: 1})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v string
	err = conn.QueryRow(ctx, "SELECT version()").Scan(&v)
	return v, err
}

func TestClickHouseTLS(t *testing.T) {
	testenv.ClickHouseAddr(t) // skip by hand, fail under CI, without the test services
	p := newTestPKI(t)
	certErr := func(err error) bool {
		return err != nil && (strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "x509"))
	}
	// The server refused the client (its certificate), not the client the
	// server's: a TLS alert or a reset, never a verification error.
	serverRefused := func(err error) bool { return err != nil && !strings.Contains(err.Error(), "x509") }
	type tc struct {
		name    string
		tls     bool
		files   TLSFiles
		plain   bool             // dial the plain port instead
		wantErr func(error) bool // nil = must work
	}
	run := func(t *testing.T, s tlsClickHouse, cases []tc) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				addr := s.tlsAddr
				if c.plain {
					addr = s.plainAddr
				}
				v, err := chPing(addr, c.tls, c.files)
				if c.wantErr == nil {
					if err != nil || v == "" {
						t.Fatalf("version %q, err %v; want a working connection", v, err)
					}
					t.Logf("connected over TLS to ClickHouse %s", v)
					return
				}
				if err == nil {
					t.Fatalf("connected (version %s); want a failure", v)
				}
				if !c.wantErr(err) {
					t.Fatalf("unexpected error: %v", err)
				}
				t.Logf("refused as expected: %v", err)
			})
		}
	}
	t.Run("server certificate", func(t *testing.T) {
		s := startTLSClickHouse(t, p, false)
		run(t, s, []tc{
			{name: "ca file", tls: true, files: TLSFiles{CAFile: p.caFile}},
			{name: "ca file and server name localhost", tls: true, files: TLSFiles{CAFile: p.caFile, ServerName: "localhost"}},
			{name: "system roots only", tls: true, wantErr: certErr},
			{name: "another CA", tls: true, files: TLSFiles{CAFile: p.otherCAFile}, wantErr: certErr},
			{name: "wrong server name", tls: true, files: TLSFiles{CAFile: p.caFile, ServerName: "ch.example.com"}, wantErr: certErr},
			{name: "plaintext to the tls port", wantErr: func(err error) bool { return err != nil }},
			{name: "tls to the plain port", tls: true, plain: true, files: TLSFiles{CAFile: p.caFile}, wantErr: func(err error) bool { return err != nil }},
		})
	})
	t.Run("client certificate required", func(t *testing.T) {
		s := startTLSClickHouse(t, p, true)
		other := newTestPKI(t)
		run(t, s, []tc{
			{name: "ca and client certificate", tls: true, files: TLSFiles{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}},
			{name: "no client certificate", tls: true, files: TLSFiles{CAFile: p.caFile}, wantErr: serverRefused},
			{name: "client certificate of another CA", tls: true,
				files: TLSFiles{CAFile: p.caFile, CertFile: other.clientCert, KeyFile: other.clientKey}, wantErr: serverRefused},
		})
	})
}

// TestClickHouseTLSThroughBinary runs `auditwatch migrate` with a YAML
// configuration naming the CA and client certificate, against a server that
// requires client certificates: the settings reach the connection.
func TestClickHouseTLSThroughBinary(t *testing.T) {
	testenv.ClickHouseAddr(t)
	p := newTestPKI(t)
	s := startTLSClickHouse(t, p, true)
	write := func(files string) string {
		path := filepath.Join(t.TempDir(), "auditwatch.yaml")
		body := fmt.Sprintf("clickhouse: {addr: [%q], database: aw_tls, tls: true, %s}\n", s.tlsAddr, files)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write(fmt.Sprintf("tls_ca_file: %q, tls_cert_file: %q, tls_key_file: %q", p.caFile, p.clientCert, p.clientKey))
	if out, err := exec.Command(binary, "migrate", "--config", good).CombinedOutput(); err != nil {
		t.Fatalf("migrate over mutual TLS: %v\n%s", err, tail(string(out), 3000))
	}
	conn := testenv.Connect(t, s.plainAddr)
	if n := testenv.Count(t, conn, "SELECT count() FROM system.tables WHERE database = 'aw_tls' AND name = 'access_log'"); n != 1 {
		t.Fatalf("access_log tables in aw_tls after migrate over TLS: %d, want 1", n)
	}
	key, err := os.ReadFile(p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	bad := write(fmt.Sprintf("tls_ca_file: %q, tls_cert_file: %q, tls_key_file: %q", p.caFile, p.clientCert, p.serverKey))
	cmd := exec.Command(binary, "migrate", "--config", bad)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("migrate with a key that does not match the certificate succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), p.serverKey) || strings.Contains(string(out), "PRIVATE KEY") || strings.Contains(string(out), string(key[40:70])) {
		t.Fatalf("want an error naming the key file and nothing of its contents, got:\n%s", out)
	}
}
