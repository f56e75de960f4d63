package track

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// failConfirmOnce fails the first confirmation (endScript with "ok") sent
// while armed, after delay: the event was produced, but Redis does not
// record it, and the attempt's lease runs out meanwhile.
type failConfirmOnce struct {
	armed *atomic.Bool
	delay time.Duration
}

func (h failConfirmOnce) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h failConfirmOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.hit(cmd) {
			time.Sleep(h.delay)
			cmd.SetErr(errors.New("injected: confirmation lost"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (h failConfirmOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if h.hit(c) {
				time.Sleep(h.delay)
				err := errors.New("injected: confirmation lost")
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}

func (h failConfirmOnce) hit(cmd redis.Cmder) bool {
	a := cmd.Args()
	if cmd.Name() != "evalsha" || len(a) < 6 || a[1] != endScript.Hash() || a[len(a)-1] != "ok" {
		return false
	}
	return h.armed.CompareAndSwap(true, false)
}

// A pair of faults: Redis loses a SmartFastPay payout's status key and its
// hand-off (the payout paid, its success callback lost), and when the
// refund callback emits the APPROVED its RETURNED implies, the APPROVED's
// confirmation is lost (produced, not recorded; its lease runs out). The
// RETURNED that follows must still go out, or the callback must be
// answered so that SmartFastPay sends it again: answered 200 with nothing
// emitted, a final payout without hand-off is put on no schedule, and the
// request stays APPROVED on the topic although the payee was refunded.
func TestReturnedAfterImpliedApprovedConfirmLostIsNotDropped(t *testing.T) {
	f := newFixture(t, fixtureOpts{ownRedis: true})
	s := newSingles(t)
	var armed atomic.Bool
	const lease = 400 * time.Millisecond
	rdb := hookedClient(t, f.redis.Client(), failConfirmOnce{armed: &armed, delay: 2 * lease})
	_, srv := f.singleEngine(s, func(c *Config) {
		c.Redis, c.LossGrace, c.Lease, c.ProduceTimeout = rdb, -1, lease, 300*time.Millisecond
	})
	r := f.sfpPayout("http://127.0.0.1:1/nowhere", "21") // onhold, success, then refunded
	providerID := f.handOff(s.sfpc, r)
	send := s.sfpCallbacks(t, srv.URL, r, providerID)
	if c := send("onhold"); c != http.StatusOK {
		t.Fatalf("onhold: %d", c)
	}
	for range 6 { // paid (its callback lost), then refunded
		s.sfp.Advance(time.Second)
	}
	ctx := context.Background()
	if p, err := s.sfpc.Get(ctx, providerID); err != nil || p.Status != payout.StatusReturned {
		t.Fatalf("SmartFastPay's status %+v, %v; want RETURNED", p, err)
	}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	code := send("refunded")
	if armed.Load() {
		t.Fatal("no confirmation was failed")
	}
	evs := f.statusEvents()
	got := statusesOf(evs, r.ID)
	returned := len(got) > 0 && got[len(got)-1] == payout.StatusReturned
	if code < 500 && !returned {
		t.Fatalf("refund callback answered %d with events %v: RETURNED lost for good", code, got)
	}
	if code >= 500 {
		// Sent again, it must emit the RETURNED.
		if c := send("refunded"); c != http.StatusOK {
			t.Fatalf("refund callback sent again: %d", c)
		}
		got = statusesOf(f.statusEvents(), r.ID)
	}
	if fmt.Sprint(dedupe(got)) != "[PENDING APPROVED RETURNED]" {
		t.Errorf("statuses %v, want PENDING, APPROVED, RETURNED", got)
	}
}

// dedupe drops repeats of the status just before (an event emitted again
// with its eventId).
func dedupe(sts []payout.Status) []payout.Status {
	var out []payout.Status
	for _, s := range sts {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}
