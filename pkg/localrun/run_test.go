package localrun

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The local run end to end on its embedded defaults (kfake, a redis-server
// of its own, the three rails' simulators): every request settles, nothing
// is paid twice or lost, each single-payout rail pays some, and every
// worker's /metrics passes `promtool check metrics` (the dispatcher's with
// the consumer-lag gauge).
func TestLocalRunPaysThroughEveryRail(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := Options{Requests: 600, Seed: 7, Mix: DefaultMix, Timeout: 2 * time.Minute, Out: io.Discard, Log: io.Discard}
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.drive(ctx, o, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out)
	if !rep.OK() || len(rep.Lost) > 0 {
		t.Fatalf("reconciliation failed:\n%s", out.String())
	}
	for _, r := range []string{"smartfastpay", "wepayout"} {
		if rep.Singles[r] == 0 {
			t.Fatalf("no single payout through %s:\n%s", r, out.String())
		}
	}
	if rep.Batches == 0 || rep.Approved == 0 {
		t.Fatalf("no Wompi batch or no approved payout:\n%s", out.String())
	}
	if !s.freshKafka {
		t.Errorf("the stack created its kfake and its Redis (%s), but did not tell the dispatcher they are fresh", s.Redis.Kind)
	}
	if r := retention(t, s.Brokers, s.Topics.DispatcherStarts); r != "-1" {
		t.Errorf("the start records' topic keeps records for retention.ms=%s, want -1 (the dispatcher logs an error)", r)
	}
	promtool, perr := exec.LookPath("promtool")
	if perr != nil && os.Getenv("CI") != "" {
		t.Fatal("promtool is not installed: CI installs it (.ci/run)")
	}
	fetch := func(w string) string {
		resp, err := http.Get("http://" + s.Metrics[w] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	for _, w := range []string{"ingest", "dispatcher", "tracker"} {
		body := fetch(w)
		if w == "dispatcher" {
			// The lag is measured on a ticker: wait for a measure that
			// sees the group's commits.
			for end := time.Now().Add(time.Minute); !strings.Contains(body, "payouts_consumer_group_lag{") && time.Now().Before(end); {
				time.Sleep(time.Second)
				body = fetch(w)
			}
			if !strings.Contains(body, "payouts_consumer_group_lag{") {
				t.Errorf("the dispatcher's /metrics has no consumer-lag gauge")
			}
		}
		if perr != nil {
			t.Logf("promtool not installed: %s /metrics not checked", w)
			continue
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if res, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(res))) > 0 {
			t.Errorf("promtool check metrics on %s: %v\n%s", w, err, res)
		}
	}
}
