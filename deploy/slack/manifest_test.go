// Package slack_test checks the Slack app manifest in this directory.
package slack_test

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/auditwatch/auditwatch/alerts/triage"
)

type manifest struct {
	DisplayInformation struct {
		Name            string `yaml:"name"`
		Description     string `yaml:"description"`
		BackgroundColor string `yaml:"background_color"`
	} `yaml:"display_information"`
	Features struct {
		BotUser struct {
			DisplayName  string `yaml:"display_name"`
			AlwaysOnline bool   `yaml:"always_online"`
		} `yaml:"bot_user"`
		SlashCommands []struct {
			Command      string `yaml:"command"`
			Description  string `yaml:"description"`
			URL          string `yaml:"url"`
			UsageHint    string `yaml:"usage_hint"`
			ShouldEscape bool   `yaml:"should_escape"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot []string `yaml:"bot"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		Interactivity struct {
			IsEnabled  bool   `yaml:"is_enabled"`
			RequestURL string `yaml:"request_url"`
		} `yaml:"interactivity"`
		SocketModeEnabled    bool `yaml:"socket_mode_enabled"`
		OrgDeployEnabled     bool `yaml:"org_deploy_enabled"`
		TokenRotationEnabled bool `yaml:"token_rotation_enabled"`
	} `yaml:"settings"`
}

// TestManifest: the manifest parses strictly, enables Socket Mode and
// interactivity without a public URL, declares the slash command triage
// answers and every scope it uses.
func TestManifest(t *testing.T) {
	b, err := os.ReadFile("manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var m manifest
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if !m.Settings.SocketModeEnabled || !m.Settings.Interactivity.IsEnabled || m.Settings.Interactivity.RequestURL != "" {
		t.Errorf("settings %+v: want socket mode and interactivity on, no request URL", m.Settings)
	}
	if m.DisplayInformation.Name == "" || m.Features.BotUser.DisplayName == "" {
		t.Errorf("the app needs a name and a bot user")
	}
	if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != triage.SlashCommand || m.Features.SlashCommands[0].URL != "" {
		t.Errorf("slash commands %+v: want %s without a URL", m.Features.SlashCommands, triage.SlashCommand)
	}
	for _, s := range append([]string{"chat:write.public"}, triage.RequiredScopes...) {
		if !slices.Contains(m.OAuthConfig.Scopes.Bot, s) {
			t.Errorf("bot scope %s missing", s)
		}
	}
}
