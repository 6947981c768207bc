package gen

import (
	"fmt"
	"io"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// ExportedKey is one key as the gateway dashboard's registry export lists
// it: the format `auditwatch keys import` reads (docs/key-registry.md). Like
// the dashboard's export it carries the full key in APIKey, which the
// importer fingerprints and drops.
type ExportedKey struct {
	ID           string     `yaml:"id" json:"id"`
	APIKey       string     `yaml:"api_key,omitempty" json:"api_key,omitempty"`
	Env          string     `yaml:"env" json:"env"`
	AccountID    string     `yaml:"account_id" json:"account_id"`
	Owner        string     `yaml:"owner" json:"owner"`
	Status       string     `yaml:"status" json:"status"`
	CreatedAt    time.Time  `yaml:"created_at" json:"created_at"`
	RotatedAt    *time.Time `yaml:"rotated_at,omitempty" json:"rotated_at,omitempty"`
	ExpiresAt    *time.Time `yaml:"expires_at,omitempty" json:"expires_at,omitempty"`
	LastUsedAt   *time.Time `yaml:"last_used_at,omitempty" json:"last_used_at,omitempty"`
	AllowedCIDRs []string   `yaml:"allowed_cidrs" json:"allowed_cidrs"`
}

// RegistryExport returns the generator's key registry as the dashboard would
// export it, sorted by id: the registry fields of each Key, its full secret
// as APIKey, unset times as nil and no allowlist as an empty list.
func (g *Generator) RegistryExport() []ExportedKey {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		t = t.UTC()
		return &t
	}
	out := make([]ExportedKey, len(g.keys))
	for i, k := range g.keys {
		out[i] = ExportedKey{
			ID: k.ID, APIKey: k.Secret, Env: k.Env, AccountID: k.AccountID, Owner: k.Owner, Status: k.Status,
			CreatedAt: k.CreatedAt.UTC(), RotatedAt: opt(k.RotatedAt), ExpiresAt: opt(k.ExpiresAt), LastUsedAt: opt(k.LastUsedAt),
			AllowedCIDRs: append([]string{}, k.AllowedCIDRs...),
		}
	}
	return out
}

// WriteRegistryYAML writes keys as an import file, `keys:` and one mapping
// per key. The output holds full API keys when the entries have APIKey set:
// treat it as a secret.
func WriteRegistryYAML(w io.Writer, keys []ExportedKey) error {
	if _, err := io.WriteString(w, "# API key registry export. Contains full API keys: keep it secret.\n"); err != nil {
		return fmt.Errorf("write registry: %w", err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(struct {
		Keys []ExportedKey `yaml:"keys"`
	}{keys}); err != nil {
		return fmt.Errorf("write registry: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write registry: %w", err)
	}
	return nil
}
