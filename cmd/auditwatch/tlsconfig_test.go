package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSConfig(t *testing.T) {
	p := newTestPKI(t)
	keyPEM, err := os.ReadFile(p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "notpem.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name    string
		on      bool
		files   TLSFiles
		wantErr string // substring; "" = no error
		check   func(*testing.T, *tls.Config)
	}{
		{name: "off", check: func(t *testing.T, c *tls.Config) {
			if c != nil {
				t.Fatalf("tls off: got a config %+v", c)
			}
		}},
		{name: "off with files", files: TLSFiles{CAFile: p.caFile}, wantErr: "tls is false"},
		{name: "system roots", on: true, check: func(t *testing.T, c *tls.Config) {
			if c.MinVersion != tls.VersionTLS12 || c.RootCAs != nil || len(c.Certificates) != 0 || c.ServerName != "" {
				t.Fatalf("got %+v", c)
			}
		}},
		{name: "ca, client cert and server name", on: true,
			files: TLSFiles{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "ch.internal"},
			check: func(t *testing.T, c *tls.Config) {
				if c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "ch.internal" || c.MinVersion != tls.VersionTLS12 {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "ca missing", on: true, files: TLSFiles{CAFile: missing}, wantErr: missing},
		{name: "ca without certificate", on: true, files: TLSFiles{CAFile: notPEM}, wantErr: "tls_ca_file " + notPEM + ": no PEM certificate"},
		{name: "key for cert swapped", on: true, files: TLSFiles{CertFile: p.clientKey, KeyFile: p.clientCert}, wantErr: "load client certificate " + p.clientKey},
		{name: "key of another cert", on: true, files: TLSFiles{CertFile: p.serverCert, KeyFile: p.clientKey}, wantErr: "load client certificate"},
		{name: "cert without key", on: true, files: TLSFiles{CertFile: p.clientCert}, wantErr: "go together"},
		{name: "key missing", on: true, files: TLSFiles{CertFile: p.clientCert, KeyFile: missing}, wantErr: missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsConfig(tt.on, tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				// No key material in any error.
				if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(keyPEM[30:60])) {
					t.Fatalf("error contains key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestSASLMechanismErrorsHidePassword(t *testing.T) {
	const secret = "s3cr\x07t-password" // a control character: SASLprep refuses it
	for _, mech := range []string{"scram-sha-256", "scram-sha-512"} {
		t.Run(mech, func(t *testing.T) {
			_, err := saslMechanism(SASLConfig{Mechanism: mech, Username: "aw", Password: secret})
			if err == nil {
				t.Fatal("want an error for a password SASLprep refuses")
			}
			if strings.Contains(err.Error(), "s3cr") {
				t.Fatalf("error contains the password: %q", err)
			}
		})
	}
	if _, err := saslMechanism(SASLConfig{Mechanism: "gssapi"}); err == nil {
		t.Fatal("gssapi: want an error")
	}
	for _, mech := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		m, err := saslMechanism(SASLConfig{Mechanism: mech, Username: "aw", Password: "fine"})
		if err != nil || m == nil {
			t.Fatalf("%s: %v %v", mech, m, err)
		}
	}
}

func TestTLSWiredIntoClients(t *testing.T) {
	p := newTestPKI(t)
	files := TLSFiles{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "kafka.internal"}
	cfg := KafkaConfig{TLS: true, TLSFiles: files, SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "p"}}
	d, err := kafkaDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.TLS == nil || d.TLS.ServerName != "kafka.internal" || len(d.TLS.Certificates) != 1 || d.TLS.RootCAs == nil || d.SASLMechanism == nil {
		t.Fatalf("dialer: %+v", d)
	}
	tr, err := kafkaTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tr.TLS == nil || tr.TLS.ServerName != "kafka.internal" || len(tr.TLS.Certificates) != 1 || tr.SASL == nil {
		t.Fatalf("transport: %+v", tr)
	}
	bad := cfg
	bad.TLSFiles.CAFile = filepath.Join(t.TempDir(), "nope.pem")
	if _, err := kafkaDialer(bad); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("dialer with a missing CA file: %v", err)
	}
	if _, err := kafkaTransport(bad); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("transport with a missing CA file: %v", err)
	}
	if _, err := openClickHouse(ClickHouseConfig{Addr: []string{"127.0.0.1:1"}, TLS: true, TLSFiles: bad.TLSFiles}); err == nil || !strings.Contains(err.Error(), "nope.pem") {
		t.Fatalf("clickhouse with a missing CA file: %v", err)
	}
}
