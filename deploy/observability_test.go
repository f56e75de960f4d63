package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// registeredMetrics scans the non-test Go sources under pkg/ for the names
// of the Prometheus metrics they register: literal "payouts_..." names, and
// Name: "x" joined with a file's `const ns, sub = "a", "b"`.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	fullName := regexp.MustCompile(`Name:\s*"(payouts_[a-z0-9_]+)"`)
	nsSub := regexp.MustCompile(`const ns, sub = "([a-z0-9_]+)", "([a-z0-9_]+)"`)
	shortName := regexp.MustCompile(`Subsystem:\s*sub,\s*Name:\s*"([a-z0-9_]+)"`)
	descName := regexp.MustCompile(`prometheus\.NewDesc\(\s*"(payouts_[a-z0-9_]+)"`)
	out := map[string]bool{}
	err := filepath.WalkDir(repoPath("pkg"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range append(fullName.FindAllSubmatch(src, -1), descName.FindAllSubmatch(src, -1)...) {
			out[string(m[1])] = true
		}
		if ns := nsSub.FindSubmatch(src); ns != nil {
			for _, m := range shortName.FindAllSubmatch(src, -1) {
				out[string(ns[1])+"_"+string(ns[2])+"_"+string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Sanity: the scan must find the metrics the rules and panels rely on,
	// or every "unknown metric" check below would be vacuous.
	for _, must := range []string{"payouts_ingest_requests_total", "payouts_dispatcher_wompi_unhealthy", "payouts_tracker_webhooks_total", "payouts_consumer_group_lag"} {
		if !out[must] {
			t.Fatalf("metric scan did not find %s (found %d names): fix registeredMetrics", must, len(out))
		}
	}
	return out
}

var metricRef = regexp.MustCompile(`\bpayouts_[a-z0-9_]+\b`)

// unknownMetrics returns the payouts_* series an expression uses that no
// code registers (histogram _bucket/_count/_sum series included).
func unknownMetrics(expr string, known map[string]bool) []string {
	var bad []string
	for _, name := range metricRef.FindAllString(expr, -1) {
		base := name
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(name, suf); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			bad = append(bad, name)
		}
	}
	return bad
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// runbookBase is where every alert's runbook_url points: a section of the
// production guide named after the alert.
const runbookBase = "https://github.com/wompi-payouts/pipeline/blob/main/docs/operations.md#"

// TestAlertRules: alerts.yml is valid YAML with the expected groups, every
// alert is complete (for, severity, summary, description, runbook, a
// runbook_url to its section of docs/operations.md), uses
// only metrics the code registers, and the alerts the runbook promises
// exist. With promtool installed it also runs `check rules` and the unit
// tests in alerts_test.yml.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(repoPath("deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	known := registeredMetrics(t)
	rawGuide, err := os.ReadFile(repoPath("docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(rawGuide)
	groups := map[string]bool{}
	alerts := map[string]bool{}
	exprs := ""
	for _, g := range rf.Groups {
		groups[g.Name] = true
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			exprs += r.Expr + "\n"
			if r.For == "" {
				t.Errorf("alert %s: no for", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
			// The runbook_url points at the alert's own section of the
			// production guide, which must exist.
			wantURL := runbookBase + strings.ToLower(r.Alert)
			if got := r.Annotations["runbook_url"]; got != wantURL {
				t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, got, wantURL)
			}
			if !strings.Contains(guide, "\n### "+r.Alert+"\n") {
				t.Errorf("alert %s: docs/operations.md has no section \"### %s\" for its runbook_url", r.Alert, r.Alert)
			}
			if bad := unknownMetrics(r.Expr, known); len(bad) > 0 {
				t.Errorf("alert %s uses metrics no code registers: %v", r.Alert, bad)
			}
		}
	}
	for _, g := range []string{"payouts-availability", "payouts-kafka", "payouts-ingest", "payouts-dispatcher", "payouts-tracker"} {
		if !groups[g] {
			t.Errorf("alerts.yml: no group %s", g)
		}
	}
	for _, a := range []string{"PayoutsConsumerLagHigh", "PayoutsIngestDLQGrowing", "PayoutsWebhookSignatureFailures",
		"PayoutsWompiErrorRatioHigh", "PayoutsWompiUnhealthy", "PayoutsDailyBudgetHigh", "PayoutsBatchesDeferred"} {
		if !alerts[a] {
			t.Errorf("alerts.yml: no alert %s", a)
		}
	}
	for _, must := range []string{`payouts_consumer_group_lag`, `payouts_ingest_requests_total{outcome="dlq"}`,
		`payouts_tracker_webhook_signature_failures_total`, `payouts_dispatcher_wompi_errors_total`,
		`payouts_dispatcher_wompi_unhealthy`, `payouts_dispatcher_budget_usage_ratio`, `payouts_dispatcher_deferred_total`} {
		if !strings.Contains(exprs, must) {
			t.Errorf("no alert expression uses %s", must)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: `check rules` and the rule unit tests not run")
		return
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = repoPath("deploy", "prometheus")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// TestGrafanaDashboard: the dashboard is valid JSON with a uid, every
// panel queries only metrics the code registers, panels do not overlap,
// and the required views exist.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(repoPath("deploy", "grafana", "payouts-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string         `json:"uid"`
		Title         string         `json:"title"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("payouts-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard needs uid, title and schemaVersion; got %q %q %d", d.UID, d.Title, d.SchemaVersion)
	}
	known := registeredMetrics(t)
	var all []grafanaPanel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...) // panels of collapsed rows
	}
	ids := map[int]bool{}
	exprs := ""
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range all {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					x, y = 1<<30, 1<<30
					break
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q is wider than the grid", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: empty query %s", p.Title, tg.RefID)
			}
			if bad := unknownMetrics(tg.Expr, known); len(bad) > 0 {
				t.Errorf("panel %q queries metrics no code registers: %v", p.Title, bad)
			}
			exprs += tg.Expr + "\n"
		}
	}
	for view, metric := range map[string]string{
		"throughput by outcome":    "payouts_ingest_requests_total",
		"batches by close reason":  "payouts_ingest_batches_total",
		"Wompi latency":            "payouts_dispatcher_wompi_request_seconds_bucket",
		"Wompi errors":             "payouts_dispatcher_wompi_errors_total",
		"deferred":                 "payouts_dispatcher_deferred_total",
		"budget usage":             "payouts_dispatcher_budget_usage_ratio",
		"webhook results":          "payouts_tracker_webhooks_total",
		"consumer lag":             "payouts_consumer_group_lag",
		"transitions by status":    "payouts_tracker_transitions_total",
		"Wompi UNHEALTHY":          "payouts_dispatcher_wompi_unhealthy",
		"signature failures":       "payouts_tracker_webhook_signature_failures_total",
		"submitted transactions":   "payouts_dispatcher_transactions_submitted_total",
		"ingest transaction state": "payouts_ingest_transactions_total",
	} {
		if !strings.Contains(exprs, metric) {
			t.Errorf("dashboard has no %s panel (no query on %s)", view, metric)
		}
	}
}
