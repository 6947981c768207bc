package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// tlsConfig returns the TLS settings of a ClickHouse or Kafka connection,
// or nil when on is false (plain TCP). With on, it requires TLS 1.2 or
// later; verifies the server against the certificates in f.CAFile (PEM) if
// set, else against the system roots; presents the client certificate in
// f.CertFile with the key in f.KeyFile (mutual TLS) if set; and verifies
// f.ServerName in the server's certificate if set, else the host dialled.
//
// Errors name the file that could not be used, never its contents, so a
// private key never reaches a log.
func tlsConfig(on bool, f TLSFiles) (*tls.Config, error) {
	if !on {
		if f != (TLSFiles{}) {
			return nil, errors.New("tls_* files are set but tls is false")
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %s: no PEM certificate found", f.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		// LoadX509KeyPair's errors name neither the files nor their bytes.
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s with key %s: %w", f.CertFile, f.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case f.CertFile != "" || f.KeyFile != "":
		return nil, errors.New("tls_cert_file and tls_key_file go together")
	}
	return c, nil
}
