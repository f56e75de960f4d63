package localrun

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// The load run on a single-payout rail, at a tiny size, through RunLoad (its
// kfake and simulators are child processes of the test binary): every
// request reaches SUBMITTED as a single payout of that rail, the rail's
// simulator ledger accepted each request exactly once, and nothing went
// through Wompi or the other rail. A run that ignored the rail would pay
// the requests through Wompi batches.
func TestLoadRunPaysEveryRequestThroughTheChosenRail(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	const n = 2000
	for _, r := range []rail.Name{rail.SmartFastPay, rail.WEpayout} {
		t.Run(string(r), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			logPath := filepath.Join(t.TempDir(), "workers.log")
			logFile, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logFile.Close()
			rep, err := RunLoad(ctx, Options{Requests: n, Seed: 11, Rail: string(r), Partitions: 3, Timeout: 2 * time.Minute,
				Out: io.Discard, Log: logFile})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			rep.Print(&out)
			if !rep.OK() || len(rep.DuplicatesPaid) > 0 {
				t.Fatalf("reconciliation failed:\n%s\nworkers' log lines of the lost requests:\n%s", out.String(), linesAbout(logPath, rep.Lost))
			}
			other := rail.WEpayout
			if r == rail.WEpayout {
				other = rail.SmartFastPay
			}
			// The load run started its kfake child and its redis-server: the
			// dispatcher's first start waits for no other dispatcher's POST
			// on this rail.
			if logs, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(logs), "this program created its Kafka cluster and its Redis") {
				t.Fatalf("the workers' log does not show a first start on a fresh Kafka cluster (%v)", err)
			}
			if rep.Submitted != n || rep.Singles[string(r)] != n || rep.Singles[string(other)] != 0 || rep.Batches != 0 {
				t.Fatalf("submitted %d, %s %d, %s %d, Wompi batches %d: want all %d on %s:\n%s", rep.Submitted, r, rep.Singles[string(r)],
					other, rep.Singles[string(other)], rep.Batches, n, r, out.String())
			}
			if rep.Accepted[r] != n || rep.Accepted[rail.Wompi] != 0 || rep.Accepted[other] != 0 {
				t.Fatalf("ledgers accepted %v, want %d on %s only:\n%s", rep.Accepted, n, r, out.String())
			}
			l := rep.Load
			if l == nil || l.Rail != string(r) || l.Batches == 0 || l.RedisRoundTrips == 0 {
				t.Fatalf("load figures %+v: want the rail, its batches and the dispatcher's round trips", l)
			}
			if _, ok := l.ChildCPU[string(r)+"sim"]; !ok || l.WorkersCPU <= 0 || l.RedisCPU <= 0 {
				t.Fatalf("CPU figures: workers %v, redis %v, children %v: want the workers', Redis's and the %s simulator's",
					l.WorkersCPU, l.RedisCPU, l.ChildCPU, r)
			}
			// Every request is decoded, batched and posted on the heap of the
			// workers' process: at least one allocation of 8 bytes each.
			if l.HeapObjects < n || l.HeapBytes < 8*l.HeapObjects || !strings.Contains(out.String(), "heap allocations per payout") {
				t.Fatalf("heap figures: %d objects, %d bytes for %d payouts, or not printed:\n%s", l.HeapObjects, l.HeapBytes, n, out.String())
			}
			// Measured from CPU-profile samples: a run this small may sample
			// under a second of CPU, too few to split (loadGenShare).
			measured := l.LoadGenCPU >= 0
			if (!measured && l.WorkersCPU >= 2*time.Second) || (measured && (l.LoadGenCPU == 0 || l.LoadGenCPU >= l.WorkersCPU)) {
				t.Fatalf("the load run's own CPU %v of the process's %v: want a part of it, measured", l.LoadGenCPU, l.WorkersCPU)
			}
			t.Logf("\n%s", out.String())
		})
	}
}

// linesAbout returns the log lines that name one of ids (at most 10 ids).
func linesAbout(path string, ids []string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, id := range ids[:min(len(ids), 10)] {
			if strings.Contains(line, id+" ") || strings.Contains(line, id+"\"") || strings.HasSuffix(line, id) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func TestLoadMixFor(t *testing.T) {
	cases := []struct {
		rail string
		want Mix
		err  error
	}{
		{"", LoadMix, nil},
		{"wompi", LoadMix, nil},
		{"smartfastpay", Mix{SmartFastPay: 100}, nil},
		{"wepayout", Mix{WEpayout: 100}, nil},
		{"SmartFastPay", Mix{}, ErrUnknownRail},
		{"pix", Mix{}, ErrUnknownRail},
	}
	for _, tc := range cases {
		got, err := LoadMixFor(tc.rail)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("LoadMixFor(%q) = %+v, %v; want %+v, %v", tc.rail, got, err, tc.want, tc.err)
		}
	}
}

// An unknown rail stops the load run before it starts anything.
func TestLoadRunRefusesAnUnknownRail(t *testing.T) {
	_, err := RunLoad(context.Background(), Options{Requests: 1, Rail: "paypal", Out: io.Discard, Log: io.Discard})
	if !errors.Is(err, ErrUnknownRail) || !strings.Contains(err.Error(), `"paypal"`) {
		t.Fatalf("err = %v, want ErrUnknownRail naming the rail", err)
	}
}
