package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// One requestId in two batches: ingest's seen index lost its claim (a
// failover without replication, a restart without its data) while a copy
// republished by the marketplace was read on another partition, and both
// were batched (pkg/ingest/doc.go). The dispatcher's duplicate index, and
// its rebuild after the same kind of loss, must pay the payee once. The
// tests below pair that with a loss of the dispatcher's Redis at the two
// moments that matter, for each rail kind; the copy carries another amount
// and another account than the original, so that nothing but its
// requestId ties it to the first.

// twoBatchRail is one rail kind under test: Wompi (batches) or a
// single-payout rail.
type twoBatchRail struct {
	name   string
	single *singleRail // nil: Wompi
}

func twoBatchRails(t *testing.T) []twoBatchRail {
	out := []twoBatchRail{{name: "wompi"}}
	for _, mk := range singleRails(t) {
		r := mk(t)
		out = append(out, twoBatchRail{name: string(r.name), single: &r})
	}
	return out
}

// engine is an engine (a replica) of the rail kind; its calls to the rail
// go through tr when it is not nil.
func (r twoBatchRail) engine(t *testing.T, f *fixture, tr http.RoundTripper, mutate func(*Config)) *Engine {
	if r.single != nil {
		sr := *r.single
		if tr != nil {
			sr = sr.through(t, tr)
		}
		return sr.engine(f, mutate)
	}
	return f.engine(func(c *Config) {
		if tr != nil {
			c.Wompi = wompi.NewRail(f.sim.Client(&http.Client{Transport: tr}), wompi.RailConfig{})
		}
		if mutate != nil {
			mutate(c)
		}
	})
}

// accepted is how many payouts the rail's simulator accepted under id.
func (r twoBatchRail) accepted(f *fixture, id string) int {
	if r.single != nil {
		return r.single.sim.Accepted(id)
	}
	le, _ := f.sim.LedgerEntry(id)
	return le.Accepted
}

// amounts are the amounts of the payouts the rail's simulator accepted
// under id.
func (r twoBatchRail) amounts(t *testing.T, f *fixture, id string) []int64 {
	if r.single == nil {
		le, _ := f.sim.LedgerEntry(id)
		return le.AmountsInCents
	}
	switch s := r.single.sim.(type) {
	case *sfptest.Server:
		le, _ := s.LedgerEntry(id)
		return le.AmountsInCents
	case *weptest.Server:
		le, _ := s.LedgerEntry(id)
		return le.AmountsInCents
	}
	t.Fatalf("no ledger for %T", r.single.sim)
	return nil
}

// isCreate tells the rail's POST that creates a payout.
func (r twoBatchRail) isCreate(req *http.Request) bool {
	if req.Method != http.MethodPost {
		return false
	}
	switch {
	case r.single == nil:
		return strings.HasSuffix(req.URL.Path, "/payouts")
	case r.single.name == rail.SmartFastPay:
		return strings.HasSuffix(req.URL.Path, sfp.PathPayout)
	default:
		return strings.HasSuffix(req.URL.Path, "/v2/payout/payments")
	}
}

// pair is the original batch a (its request R first, then a payee of its
// own) and the copy's batch b (R again, for another amount to another
// account, then a payee of its own).
func (r twoBatchRail) pair(prefix string) (a, b payout.Batch) {
	if r.single == nil {
		a = batch(prefix+"-a", map[string]int64{prefix + "-r": 100_000, prefix + "-a1": 200_000}, prefix+"-r", prefix+"-a1")
		b = batch(prefix+"-b", map[string]int64{prefix + "-r": 150_000, prefix + "-b1": 300_000}, prefix+"-r", prefix+"-b1")
		b.Transactions[0].Beneficiary.AccountNumber = "49999999999"
		return a, b
	}
	sr := *r.single
	a = singleBatch(sr, prefix+"-a", 2)
	b = singleBatch(sr, prefix+"-b", 2)
	b.Transactions[0].RequestID = a.Transactions[0].RequestID
	b.Transactions[0].AmountInCents = 150_000
	b.Transactions[0].Beneficiary = sr.payee(2)
	b.TotalAmountInCents = 0
	for _, tx := range b.Transactions {
		b.TotalAmountInCents += tx.AmountInCents
	}
	return a, b
}

// processUntilDone reads b as a partition worker does: an attempt that
// ends with an error (a stale epoch, a lost lease) is read again, up to
// a few times, from the same source record.
func processUntilDone(e *Engine, b payout.Batch, src *kgo.Record) error {
	var err error
	for range 6 {
		bb := b
		bb.Transactions = slices.Clone(b.Transactions)
		if err = e.process(context.Background(), &bb, src, testLogger()); err == nil {
			return nil
		}
	}
	return err
}

// checkPaidOnce asserts every payee of a and b was paid once, R (their
// shared request) included, and that the status topic holds one lifecycle
// per requestId and the DLQ one copy of R.
func (r twoBatchRail) checkPaidOnce(t *testing.T, f *fixture, a, b payout.Batch) {
	t.Helper()
	rid := a.Transactions[0].RequestID
	for _, id := range []string{rid, a.Transactions[1].RequestID, b.Transactions[1].RequestID} {
		if n := r.accepted(f, id); n != 1 {
			t.Errorf("%s accepted %d times by %s, want 1", id, n, r.name)
		}
	}
	if r.single == nil {
		f.noDoublePayment()
	}
	f.checkLifecycles()
	dlq := f.duplicateCopies()
	if got := dlq[rid]; got != a.BatchID && got != b.BatchID {
		t.Errorf("DLQ copies %v: want one copy of %s, from one of the two batches", dlq, rid)
	}
	if len(dlq) != 1 {
		t.Errorf("DLQ copies %v: want only %s's", dlq, rid)
	}
}

// Cases 1 and 3: replica A screened its batch (R indexed as A's) and
// stalls just before its POST; Redis loses the dispatcher's state; replica
// B reads the copy's batch, runs the recovery (nothing listed: A never
// posted) and pays R to the copy's account. A then wakes up with its lease
// lost: it must not post, and its batch read again finds R owned by B.
func TestTwoBatchesOneRequestFirstStalledBeforeItsPostAcrossARedisLoss(t *testing.T) {
	t.Parallel()
	for _, r := range twoBatchRails(t) {
		t.Run(r.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
			a, b := r.pair("stall-" + r.name)
			srcA := &kgo.Record{Topic: f.topics.Batches, Key: []byte(a.BatchID), Timestamp: time.Now()}
			srcB := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
			eB := r.engine(t, f, nil, nil)
			eA := r.engine(t, f, nil, func(c *Config) { c.SingleConcurrency = 1 })
			var once sync.Once
			var errB error
			eA.beforePost = func(id string) {
				if id != a.BatchID {
					return
				}
				once.Do(func() {
					if err := f.redis.FlushAll(context.Background()); err != nil {
						errB = err
						return
					}
					errB = processUntilDone(eB, b, srcB)
				})
			}
			if err := processUntilDone(eA, a, srcA); err != nil {
				t.Fatalf("batch a: %v", err)
			}
			if errB != nil {
				t.Fatalf("batch b: %v", errB)
			}
			r.checkPaidOnce(t, f, a, b)
			rid := a.Transactions[0].RequestID
			if got := f.duplicateCopies()[rid]; got != a.BatchID {
				t.Errorf("the copy dropped from batch %q, want a's %q: b paid R while a stalled", got, a.BatchID)
			}
			if got := r.amounts(t, f, rid); !slices.Equal(got, []int64{b.Transactions[0].AmountInCents}) {
				t.Errorf("%s paid %v, want once, the copy's amount", rid, got)
			}
			if n := testutil.ToFloat64(eB.m.recoveries); n != 1 {
				t.Errorf("recoveries of b's replica %v, want 1", n)
			}
		})
	}
}

// lostAnswer hands the first create to around, which sends it to the
// rail (forward) when it chooses, and answers the caller with an error:
// the POST's outcome is unknown to it. Every other call goes through.
type lostAnswer struct {
	create func(*http.Request) bool
	around func(forward func())
	once   sync.Once
}

func (l *lostAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	fired := false
	if l.create(req) {
		l.once.Do(func() { fired = true })
	}
	if !fired {
		return http.DefaultTransport.RoundTrip(req)
	}
	// Sent whatever became of the caller's wait: the rail applies it.
	late := req.Clone(context.WithoutCancel(req.Context()))
	l.around(func() {
		if resp, err := http.DefaultTransport.RoundTrip(late); err == nil {
			resp.Body.Close()
		}
	})
	return nil, errors.New("injected: the create's answer was lost")
}

// Case 2: replica A's POST of its batch reaches the rail, its answer is
// lost (outcome unknown), and Redis loses the dispatcher's state: before
// the POST landed (landed=false: it lands a second after the loss, within
// the recovery's grace) or after (landed=true). Replica B reads the copy's
// batch meanwhile. The recovery's grace covers A's POST, its listing finds
// R, and B must not pay R again (Wompi: a duplicate; a single-payout rail:
// the mark taken over and the payout adopted). A's batch read again pays
// its own payee and never R twice.
func TestTwoBatchesOneRequestFirstOutcomeUnknownAtARedisLoss(t *testing.T) {
	t.Parallel()
	for _, r := range twoBatchRails(t) {
		for _, landed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/landed=%v", r.name, landed), func(t *testing.T) {
				f := newFixture(t, fixtureOpt{ownRedis: true, partitions: 1})
				a, b := r.pair(fmt.Sprintf("unknown-%s-%v", r.name, landed))
				srcA := &kgo.Record{Topic: f.topics.Batches, Key: []byte(a.BatchID), Timestamp: time.Now()}
				srcB := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
				eB := r.engine(t, f, nil, nil)
				var errB error
				tr := &lostAnswer{create: r.isCreate, around: func(forward func()) {
					if landed {
						forward()
					}
					if err := f.redis.FlushAll(context.Background()); err != nil {
						errB = err
						return
					}
					done := make(chan struct{})
					go func() { defer close(done); errB = processUntilDone(eB, b, srcB) }()
					if !landed {
						time.Sleep(time.Second) // well within RecoveryGrace (3 s)
						forward()
					}
					<-done
				}}
				eA := r.engine(t, f, tr, func(c *Config) { c.SingleConcurrency = 1 })
				if err := processUntilDone(eA, a, srcA); err != nil {
					t.Fatalf("batch a: %v", err)
				}
				if errB != nil {
					t.Fatalf("batch b: %v", errB)
				}
				r.checkPaidOnce(t, f, a, b)
				rid := a.Transactions[0].RequestID
				if got := r.amounts(t, f, rid); !slices.Equal(got, []int64{a.Transactions[0].AmountInCents}) {
					t.Errorf("%s paid %v, want once, the original's amount", rid, got)
				}
				if n := testutil.ToFloat64(eB.m.recoveries); n != 1 {
					t.Errorf("recoveries of b's replica %v, want 1", n)
				}
			})
		}
	}
}
