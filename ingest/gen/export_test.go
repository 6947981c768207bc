package gen

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

func TestRegistryExport(t *testing.T) {
	g := mustNew(t, smallConfig(3))
	exp := g.RegistryExport()
	keys := g.Keys()
	if len(exp) != len(keys) {
		t.Fatalf("%d exported, %d keys", len(exp), len(keys))
	}
	for i, e := range exp {
		k := keys[i]
		if e.ID != k.ID || e.APIKey != k.Secret || e.Status != k.Status || !e.CreatedAt.Equal(k.CreatedAt) ||
			(e.RotatedAt == nil) != k.RotatedAt.IsZero() || (e.ExpiresAt == nil) != k.ExpiresAt.IsZero() ||
			len(e.AllowedCIDRs) != len(k.AllowedCIDRs) || e.AllowedCIDRs == nil {
			t.Errorf("export %d: %+v for key %+v", i, e, k)
		}
	}
	var buf bytes.Buffer
	if err := WriteRegistryYAML(&buf, exp); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "# API key registry export") {
		t.Errorf("no warning header:\n%.200s", buf.String())
	}
	var back struct {
		Keys []ExportedKey `yaml:"keys"`
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Keys, exp) {
		t.Error("the YAML does not decode back to the export")
	}
}
