package deploytest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestAlertRules runs Debian's promtool over deploy/prometheus: the rules
// load, and every alert's unit tests (alerts_test.yaml) pass.
func TestAlertRules(t *testing.T) {
	root := repoRoot(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found in PATH: the alert checks need Debian's prometheus package (apt-get install -y prometheus)")
	}
	dir := filepath.Join(root, "deploy", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type alertTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			AlertName string           `json:"alertname"`
			ExpAlerts []map[string]any `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestAlertsHaveRunbooksAndTests: every alert has a severity, a summary, a
// runbook_url naming a section of deploy/README.md, and a unit test in
// which it fires.
func TestAlertsHaveRunbooksAndTests(t *testing.T) {
	root := repoRoot(t)
	var rules ruleFile
	readYAML(t, filepath.Join(root, "deploy", "prometheus", "alerts.yaml"), &rules)
	var tests alertTests
	readYAML(t, filepath.Join(root, "deploy", "prometheus", "alerts_test.yaml"), &tests)
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.AlertName] = true
			}
		}
	}
	anchors := readmeAnchors(t, filepath.Join(root, "deploy", "README.md"))
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], "deploy/README.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q names no section of deploy/README.md", r.Alert, r.Annotations["runbook_url"])
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no unit test in alerts_test.yaml expects it to fire", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("alerts.yaml holds no alert")
	}
}

// TestDashboard: deploy/grafana/notify.json is a dashboard whose every
// panel queries Prometheus through the datasource variable. That each
// query returns series against a live stack is TestOperationsView (e2e).
func TestDashboard(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "notify.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("notify.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("notify.json: uid %q, title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, "notify_") && !strings.Contains(q.Expr, "process_") && !strings.Contains(q.Expr, "go_") {
				t.Errorf("panel %q: %q queries none of the services' series", p.Title, q.Expr)
			}
		}
	}
}

// readYAML decodes the fields v names (promtool checks the rest).
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var heading = regexp.MustCompile(`(?m)^#{1,6} +(.+)$`)

// readmeAnchors are the GitHub anchors of a Markdown file's headings.
func readmeAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
		a := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
				return r
			case r == ' ':
				return '-'
			}
			return -1
		}, strings.ToLower(strings.TrimSpace(m[1])))
		out[a] = true
	}
	return out
}
