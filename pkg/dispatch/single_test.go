package dispatch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// singleSim is what these tests need of a single-payout rail's simulator.
type singleSim interface {
	Accepted(id string) int
	DropNextCreateResponse()
	FailNext(status int)
}

// singleRail is one single-payout rail wired to its in-process simulator.
type singleRail struct {
	name   rail.Name
	client rail.SinglePayouts
	sim    singleSim
	// payee returns a valid beneficiary for the rail's i-th payee.
	payee func(i int) payout.Beneficiary
	// invalid makes a beneficiary the rail refuses.
	invalid func(b *payout.Beneficiary)
}

func sink(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/webhooks/notifications"
}

func singleRails(t *testing.T) []func(t *testing.T) singleRail {
	return singleRailsAt(t, nil)
}

// eachSingleRail runs body as a subtest of t for each single-payout rail,
// named by the rail, on a simulator that lives as long as t.
func eachSingleRail(t *testing.T, body func(t *testing.T, r singleRail)) {
	t.Helper()
	for _, mk := range singleRails(t) {
		r := mk(t)
		t.Run(string(r.name), func(t *testing.T) { body(t, r) })
	}
}

// singleRailsAt is singleRails with simulators that tell the time by clock
// (the real clock when nil).
func singleRailsAt(t *testing.T, clock *wompitest.ManualClock) []func(t *testing.T) singleRail {
	return []func(t *testing.T) singleRail{
		func(t *testing.T) singleRail {
			cb := sink(t)
			cfg := sfptest.Config{Seed: 1}
			if clock != nil {
				cfg.Clock = clock
			}
			s := sfptest.NewTestServer(t, cfg)
			return singleRail{name: rail.SmartFastPay, sim: s,
				client: s.Client(func(c *sfp.Config) { c.CallbackURL = cb }),
				payee: func(i int) payout.Beneficiary {
					phone := fmt.Sprintf("5730012345%02d", 10+i) // SmartFastPay: 57 + 10 digits
					return payout.Beneficiary{LegalIDType: payout.LegalCC, LegalID: fmt.Sprintf("123456789%02d", i), Name: "Ana Gómez",
						Email: "ana@example.com", BankCode: "1007", AccountType: payout.AccountAhorros, AccountNumber: "40000000001", Phone: &phone}
				},
				invalid: func(b *payout.Beneficiary) { b.LegalID = "123" },
			}
		},
		func(t *testing.T) singleRail {
			cfg := weptest.Config{}
			if clock != nil {
				cfg.Clock = clock
			}
			s := weptest.NewTestServer(t, cfg)
			return singleRail{name: rail.WEpayout, sim: s,
				client: s.Client(wepayout.Config{NotificationURL: sink(t)}),
				payee: func(i int) payout.Beneficiary {
					key := fmt.Sprintf("maria.souza%d00@example.com", i) // "…00": paid
					return payout.Beneficiary{LegalIDType: payout.LegalCPF, LegalID: "52998224725", Name: "Maria Souza",
						Email: "maria@example.com", AccountType: payout.AccountAhorros, PixKey: &key}
				},
				invalid: func(b *payout.Beneficiary) { b.LegalID = "52998224724" }, // a wrong check digit
			}
		},
	}
}

// singleBatch is a batch of n payees of r, 100,000 cents each.
func singleBatch(r singleRail, prefix string, n int) payout.Batch {
	amounts := map[string]int64{}
	var order []string
	for i := range n {
		rid := fmt.Sprintf("%s-%d", prefix, i)
		amounts[rid] = 100_000
		order = append(order, rid)
	}
	b := batch(prefix, amounts, order...)
	name := string(r.name)
	b.Rail = &name
	for i := range b.Transactions {
		b.Transactions[i].Beneficiary = r.payee(i)
	}
	return b
}

func (r singleRail) engine(f *fixture, mutate func(*Config)) *Engine {
	return f.engine(func(c *Config) {
		c.Singles = map[rail.Name]rail.SinglePayouts{r.name: r.client}
		if mutate != nil {
			mutate(c)
		}
	})
}

// runUntilPaidOnce runs e until b is submitted, and fails unless each of
// b's payees was paid exactly once.
func (r singleRail) runUntilPaidOnce(t *testing.T, f *fixture, e *Engine, b payout.Batch) {
	t.Helper()
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	for _, tx := range b.Transactions {
		if n := r.sim.Accepted(tx.RequestID); n != 1 {
			t.Fatalf("%s paid %d times, want 1", tx.RequestID, n)
		}
	}
}

// checkSinglePaid asserts that every request of b (but skip) was paid once,
// got one SUBMITTED naming the provider's payout, and is handed off to the
// tracker under rail.HandOffID.
func (f *fixture) checkSinglePaid(r singleRail, b payout.Batch, skip map[string]bool) {
	f.t.Helper()
	idx := byStatus(f.statuses())
	store := submitted.New(f.redis.Client(), f.redis.Prefix(), 0)
	for _, tx := range b.Transactions {
		if skip[tx.RequestID] {
			continue
		}
		if n := r.sim.Accepted(tx.RequestID); n != 1 {
			f.t.Fatalf("%s: %s paid %d times, want 1", r.name, tx.RequestID, n)
		}
		ss := idx[tx.RequestID][payout.StatusSubmitted]
		if len(ss) != 1 || ss[0].TransactionID == nil || ss[0].PayoutID != nil || ss[0].Rail == nil || *ss[0].Rail != string(r.name) {
			f.t.Fatalf("%s: %s SUBMITTED %+v, want one naming the provider's payout and the rail", r.name, tx.RequestID, ss)
		}
		pid := *ss[0].TransactionID
		m, ok, err := store.Lookup(context.Background(), rail.HandOffID(r.name, pid), pid)
		if err != nil || !ok || m.RequestID != tx.RequestID || m.BatchID != b.BatchID || m.AmountInCents != tx.AmountInCents {
			f.t.Fatalf("%s: %s hand-off %+v ok=%v err=%v", r.name, tx.RequestID, m, ok, err)
		}
	}
	f.checkLifecycles()
}

func TestSinglePayoutRailPaysEachPayeeOnce(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		e := r.engine(f, nil)
		b := singleBatch(r, "single-"+string(r.name), 6)
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		f.checkSinglePaid(r, b, nil)
	})
}

// A POST is applied but its answer is lost, then the dispatcher crashes.
// The restart must look every payee up before posting: the one whose
// answer was lost is adopted, never posted again.
func TestSingleLostAnswerThenCrashPaysOnce(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "lost-"+string(r.name), 3)
		e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
		r.sim.DropNextCreateResponse()
		untilCrash(t, f, e, b)
		paid := 0
		for _, tx := range b.Transactions {
			paid += r.sim.Accepted(tx.RequestID)
		}
		if paid != 1 {
			t.Fatalf("%d payees paid before the crash, want 1 (the lost answer)", paid)
		}
		e2 := r.engine(f, nil)
		stop2, _ := f.run(e2)
		eventually(t, "batch submitted after the restart", func() bool { return outcome(e2, "submitted") == 1 })
		_ = stop2()
		f.checkSinglePaid(r, b, nil)
	})
}

// A 5xx to a create leaves its outcome unknown: the payee is looked up,
// after the grace, before any second POST; paid once.
func TestSingleOutcomeUnknownIsLookedUpFirst(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "unknown-"+string(r.name), 2)
		e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
		r.sim.DropNextCreateResponse() // applied, answer lost: outcome unknown
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		f.checkSinglePaid(r, b, nil)
	})
}

// One payee the rail refuses is REJECTED with the rail's code; the others
// are paid.
func TestSingleRejectedPayeeOthersPaid(t *testing.T) {
	t.Parallel()
	eachSingleRail(t, func(t *testing.T, r singleRail) {
		f := newFixture(t, fixtureOpt{})
		b := singleBatch(r, "reject-"+string(r.name), 3)
		r.invalid(&b.Transactions[1].Beneficiary)
		bad := b.Transactions[1].RequestID
		e := r.engine(f, nil)
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		_ = stop()
		f.checkSinglePaid(r, b, map[string]bool{bad: true})
		if n := r.sim.Accepted(bad); n != 0 {
			t.Fatalf("the refused payee was paid %d times", n)
		}
		rej := byStatus(f.statuses())[bad][payout.StatusRejected]
		if len(rej) != 1 || rej[0].ReasonCode == nil || *rej[0].ReasonCode == "" {
			t.Fatalf("refused payee: REJECTED %+v, want one with the rail's code", rej)
		}
		if strings.Contains(deref(rej[0].ReasonMessage), "52998224724") || strings.Contains(deref(rej[0].ReasonMessage), "123456789") {
			t.Fatalf("REJECTED message carries the payee's document: %q", deref(rej[0].ReasonMessage))
		}
	})
}

// A batch of a single-payout rail the dispatcher has no client for is
// deferred whole, untouched.
func TestSingleRailWithoutClientIsDeferred(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := singleBatch(r, "noclient", 2)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch deferred", func() bool { return outcome(e, "deferred") == 1 })
	_ = stop()
	for _, tx := range b.Transactions {
		if n := r.sim.Accepted(tx.RequestID); n != 0 {
			t.Fatalf("%s paid %d times through a rail without a client", tx.RequestID, n)
		}
	}
}

// lateLanding delivers the first create to the provider only after delay,
// and tells the client at once that the call timed out: a POST that lands
// after its caller gave up on it.
type lateLanding struct {
	delay time.Duration
	once  sync.Once
	sent  sync.WaitGroup
}

func (l *lateLanding) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || strings.Contains(req.URL.Path, "token") {
		return http.DefaultTransport.RoundTrip(req)
	}
	late := false
	l.once.Do(func() { late = true })
	if !late {
		return http.DefaultTransport.RoundTrip(req)
	}
	if err := forwardLater(http.DefaultTransport, req, l.delay, &l.sent); err != nil {
		return nil, err
	}
	return nil, context.DeadlineExceeded
}

// forwardLater sends a copy of req through base delay from now, in the
// background (sent counts it until it is answered): a request the
// provider applies later than its client gave up on it.
func forwardLater(base http.RoundTripper, req *http.Request, delay time.Duration, sent *sync.WaitGroup) error {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	clone := req.Clone(context.Background())
	clone.Body = io.NopCloser(bytes.NewReader(body))
	sent.Add(1)
	go func() {
		defer sent.Done()
		time.Sleep(delay)
		if resp, err := base.RoundTrip(clone); err == nil {
			resp.Body.Close()
		}
	}()
	return nil
}

// Two faults together: a create times out on our side, and the provider
// applies it a moment later. A lookup right after the timeout would prove
// nothing (the payout is not there yet) and the POST repeated on its word
// would pay twice: the dispatcher waits RecoveryGrace first.
func TestSingleCreateThatLandsLateIsNotRepeated(t *testing.T) {
	t.Parallel()
	for _, mk := range []func(t *testing.T, hc *http.Client) singleRail{
		func(t *testing.T, hc *http.Client) singleRail {
			r := singleRails(t)[0](t)
			cb := sink(t)
			r.client = r.sim.(*sfptest.Server).Client(func(c *sfp.Config) { c.CallbackURL = cb; c.HTTPClient = hc })
			return r
		},
		func(t *testing.T, hc *http.Client) singleRail {
			r := singleRails(t)[1](t)
			r.client = r.sim.(*weptest.Server).Client(wepayout.Config{NotificationURL: sink(t), HTTPClient: hc})
			return r
		},
	} {
		late := &lateLanding{delay: time.Second}
		r := mk(t, &http.Client{Transport: late})
		t.Run(string(r.name), func(t *testing.T) {
			f := newFixture(t, fixtureOpt{})
			b := singleBatch(r, "late-"+string(r.name), 2)
			e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
			_ = stop()
			late.sent.Wait()
			f.checkSinglePaid(r, b, nil)
		})
	}
}

// roundTrips counts the Redis round trips of one client.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// A single-payout batch costs the same Redis round trips whatever its
// size: the rate limit is reserved once, the hand-off and the status gate
// are pipelined.
func TestSingleBatchRedisRoundTripsDoNotGrow(t *testing.T) {
	// Not t.Parallel: its margin of round trips for timed calls (lease
	// renewals, the eviction check) is one the other tests' load would eat.
	measure := func(n int) int64 {
		r := singleRails(t)[0](t)
		f := newFixture(t, fixtureOpt{})
		rt := &roundTrips{}
		e := r.engine(f, func(c *Config) {
			cl := f.redis.NewClient(t)
			cl.AddHook(rt)
			c.Redis = cl
			c.SingleRatePerSecond, c.SingleRateBurst = 100_000, 1000
			c.LeaseTTL = time.Minute // no renewal inside the measure
			// No background poll inside the measure either: one EXISTS
			// per poll interval (answerRecoveryWanted) counted as the
			// batch's, more of them the longer a loaded machine takes.
			c.PollInterval = time.Minute
		})
		b := singleBatch(r, fmt.Sprintf("rt%d", n), n)
		f.produce(f.topics.Batches, b)
		stop, _ := f.run(e)
		eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
		got := rt.n.Load()
		_ = stop()
		f.checkSinglePaid(r, b, nil)
		return got
	}
	measure(2) // the first run also loads the scripts into Redis
	small, large := measure(2), measure(20)
	t.Logf("Redis round trips: %d for 2 payees, %d for 20", small, large)
	if large > small+2 {
		t.Fatalf("Redis round trips grow with the batch: %d for 2 payees, %d for 20", small, large)
	}
}

// Two faults together: the provider already holds a payee's payout (paid
// before Redis lost our records, or the original of a copy republished
// after that loss) and the tracker had emitted its APPROVED; the batch
// comes (again) on a new claim, or on the claim of a replica that died
// before its lookups (the record left "claimed"). The payee is adopted,
// never posted again, and gets no SUBMITTED: it would follow the APPROVED.
// The others are paid.
func TestSingleFoundOnFreshClaimGetsNoSubmitted(t *testing.T) {
	t.Parallel()
	for _, mk := range singleRails(t) {
		for _, died := range []bool{false, true} {
			r := mk(t)
			name := string(r.name)
			if died {
				name += "/claim-left-by-a-dead-replica"
			}
			t.Run(name, func(t *testing.T) {
				f := newFixture(t, fixtureOpt{})
				b := singleBatch(r, "fresh-found-"+string(r.name), 2)
				early := b.Transactions[0].RequestID
				if _, err := r.client.Create(context.Background(), singleRequest(r.name, &b.Transactions[0])); err != nil {
					t.Fatal(err)
				}
				f.trackerEmitted(b, 0, payout.StatusApproved)
				if err := f.redis.Client().Del(context.Background(), f.redis.Prefix()+"track:req:{"+early+"}").Err(); err != nil {
					t.Fatal(err) // the tracker's record of it, lost with Redis
				}
				// What the recovery after that loss left in the index: the
				// payee, found in the rail's listing, under the rail's mark.
				if err := f.redis.Client().Set(context.Background(), f.redis.Prefix()+"{dispatch}:req:"+early, listedMark(r.name), 0).Err(); err != nil {
					t.Fatal(err)
				}
				e := r.engine(f, nil)
				if died {
					epoch, _, err := e.st.epoch(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					if _, err := e.st.claim(t.Context(), "died-after-claim", epoch, b.BatchID, rail.Wompi); err != nil {
						t.Fatal(err)
					}
					if err := e.st.rdb.HSet(t.Context(), e.st.batchKey(b.BatchID), "lease", 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
				f.produce(f.topics.Batches, b)
				stop, _ := f.run(e)
				eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
				_ = stop()
				if n := r.sim.Accepted(early); n != 1 {
					t.Fatalf("the payee the provider held was paid %d times", n)
				}
				if ss := byStatus(f.statuses())[early][payout.StatusSubmitted]; len(ss) != 0 {
					t.Fatalf("SUBMITTED after the tracker's APPROVED: %+v", ss)
				}
				f.checkSinglePaid(r, b, map[string]bool{early: true})
			})
		}
	}
}

// One rail's outage does not hold another rail's batches: one rail answers
// 503 to everything while a batch of it and then a batch of the other rail
// wait on the same partition. Past its patience, the down rail's payees
// wait on the deferred topic (DEFERRED RAIL_UNAVAILABLE) and the other
// batch is paid; once the rail is back, the deferred payees are looked up
// first and paid, each once. SmartFastPay's batch is larger than one group
// lookup, so each of its groups meets the outage.
func TestSingleRailOutageDoesNotHoldOtherRails(t *testing.T) {
	t.Parallel()
	for _, down := range []rail.Name{rail.WEpayout, rail.SmartFastPay} {
		t.Run("down="+string(down), func(t *testing.T) {
			rails := singleRails(t)
			sfpRail, wepRail := rails[0](t), rails[1](t)
			bad, good, n := wepRail, sfpRail, 3
			setErrorRate := func(rate float64) {
				wepRail.sim.(*weptest.Server).UpdateFaults(func(fl *weptest.Faults) { fl.ErrorRate = rate })
			}
			if down == rail.SmartFastPay {
				bad, good, n = sfpRail, wepRail, sfp.MaxFindMany+5
				setErrorRate = func(rate float64) {
					sfpRail.sim.(*sfptest.Server).UpdateFaults(func(fl *sfptest.Faults) { fl.ErrorRate = rate })
				}
			}
			f := newFixture(t, fixtureOpt{partitions: 1})
			e := f.engine(func(c *Config) {
				c.Singles = map[rail.Name]rail.SinglePayouts{sfpRail.name: sfpRail.client, wepRail.name: wepRail.client}
				c.RailPatience, c.RailRetry = time.Second, 2*time.Second
				c.SingleRatePerSecond, c.SingleRateBurst = 100_000, 1000
			})
			setErrorRate(1)
			bb, bg := singleBatch(bad, "outage-bad", n), singleBatch(good, "outage-good", 3)
			f.produce(f.topics.Batches, bb, bg)
			stop, _ := f.run(e)
			eventually(t, "the other rail's batch paid during the outage", func() bool { return outcome(e, "submitted") == 1 })
			for _, tx := range bb.Transactions {
				if k := bad.sim.Accepted(tx.RequestID); k != 0 {
					t.Fatalf("%s created %d times while %s answered 503 to everything", tx.RequestID, k, down)
				}
			}
			for _, i := range []int{0, n - 1} {
				def := byStatus(f.statuses())[bb.Transactions[i].RequestID][payout.StatusDeferred]
				if len(def) == 0 || def[0].ReasonCode == nil || *def[0].ReasonCode != string(rail.ReasonRailUnavailable) {
					t.Fatalf("%s payee %d during the outage: DEFERRED %+v, want RAIL_UNAVAILABLE", down, i, def)
				}
			}
			setErrorRate(0)
			f.clock.Advance(3 * time.Second) // the deferred copy is due (NotBefore is on the business clock)
			eventually(t, "the deferred payees paid after the outage", func() bool { return outcome(e, "submitted") == 2 })
			_ = stop()
			f.checkSinglePaid(good, bg, nil)
			f.checkSinglePaid(bad, bb, nil)
		})
	}
}

// SmartFastPay looks a batch's payees up a group of up to MaxFindMany at a
// time (its listing takes a comma list of our ids): 45 payees cost 2
// lookups and 45 POSTs, not 45 of each, and each is paid once. The day's
// first batch also lists the day once, for its budget (listDay).
func TestSingleLookupsOnePerGroup(t *testing.T) {
	t.Parallel()
	cb := sink(t)
	s := sfptest.NewTestServer(t, sfptest.Config{Seed: 1})
	calls := &testenv.CallCounter{}
	r := singleRails(t)[0](t)
	r.sim = s
	r.client = s.Client(func(c *sfp.Config) {
		c.CallbackURL = cb
		c.HTTPClient = &http.Client{Transport: calls, Timeout: 10 * time.Second}
	})
	f := newFixture(t, fixtureOpt{})
	e := r.engine(f, func(c *Config) {
		c.SingleRatePerSecond, c.SingleRateBurst = 100_000, 1000
		c.LookupEveryPayee = true // else new payees are not looked up (TestNewPayeesAreNotLookedUp)
	})
	const n = sfp.MaxFindMany + 5
	b := singleBatch(r, "groups", n)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	f.checkSinglePaid(r, b, nil)
	lookups, posts := calls.Count("GET "+sfp.PathPayouts), calls.Count("POST "+sfp.PathPayout)
	if lookups != 2+1 || posts != n {
		t.Fatalf("%d payees: %d listings and %d POSTs, want 2 lookups, the day's listing and %d POSTs", n, lookups, posts, n)
	}
}
