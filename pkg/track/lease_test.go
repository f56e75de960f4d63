package track

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A ticket the dispatcher holds while it waits for another ticket's keys,
// or while its produce is slow, keeps its keys for as long as it is open:
// with a lease that ran out, a webhook's later status would be emitted
// first and the pending SUBMITTED would follow it on the topic.
func TestGateHoldsKeysWhileTicketOpen(t *testing.T) {
	rs := testenv.Redis(t)
	const lease = time.Second
	g := NewGate(rs.Client(), rs.Prefix(), lease)
	var lost []string
	var mu sync.Mutex
	g.LeaseLost = func(held, want int, err error) {
		mu.Lock()
		defer mu.Unlock()
		lost = append(lost, fmt.Sprint(held, want, err))
	}
	tracker := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ctx := context.Background()
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// r-busy is held by a tracker attempt, so the dispatcher's ticket gets
	// r-1 and waits for r-busy, longer than a lease.
	busy := transition{kind: kindRequest, id: "r-busy", to: string(payout.StatusApproved), ref: "tx-b", final: true, verified: true, since: since}
	if out, _, err := tracker.begin(ctx, busy, "tracker-a"); err != nil || out != outcomeOK {
		t.Fatalf("tracker begin: %s %v", out, err)
	}
	tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-1", To: string(payout.StatusSubmitted), Ref: "tx-1"},
		{ID: "r-busy", To: string(payout.StatusSubmitted), Ref: "tx-b"}})
	if err != nil || tk.Verdicts[0] != GateOurs || tk.Verdicts[1] != GateBusy {
		t.Fatalf("begin: %+v %v", tk, err)
	}
	approved := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusApproved), ref: "tx-1", final: true, verified: true, since: since}
	for range 3 {
		time.Sleep(lease)
		if out, _, err := tracker.begin(ctx, approved, "tracker-b"); err != nil || out != outcomeBusy {
			t.Fatalf("APPROVED while the dispatcher's SUBMITTED is pending: %s %v, want busy", out, err)
		}
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
	out, from, err := tracker.begin(ctx, approved, "tracker-b")
	if err != nil || out != outcomeOK || from != string(payout.StatusSubmitted) {
		t.Fatalf("APPROVED after SUBMITTED was confirmed: %s %q %v", out, from, err)
	}
	// Ended: nothing renews it any more (a renewal after the end would
	// find it gone and report a loss).
	time.Sleep(lease)
	mu.Lock()
	defer mu.Unlock()
	if len(lost) != 0 {
		t.Fatalf("leases reported lost: %v", lost)
	}
}

// A ticket left (the client closed with its events perhaps sent) keeps its
// keys one lease more, then frees them; a renewal that finds a key taken
// over is reported.
func TestGateLeaveAndLostLease(t *testing.T) {
	rs := testenv.Redis(t)
	// Long enough that the begin just after Leave comes within it on a
	// loaded box (at 300ms one that came late found the key free).
	const lease = 3 * time.Second
	g := NewGate(rs.Client(), rs.Prefix(), lease)
	lost := make(chan string, 10)
	g.LeaseLost = func(held, want int, err error) { lost <- fmt.Sprint(held, "/", want, " ", err) }
	tracker := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ctx := context.Background()
	since, _ := g.Epoch(ctx)
	tk, err := g.Begin(ctx, since, []GateItem{{ID: "r-2", To: string(payout.StatusSubmitted), Ref: "tx-2"}})
	if err != nil || tk.Verdicts[0] != GateOurs {
		t.Fatalf("begin: %+v %v", tk, err)
	}
	left := time.Now()
	g.Leave(tk)
	approved := transition{kind: kindRequest, id: "r-2", to: string(payout.StatusApproved), ref: "tx-2", final: true, verified: true, since: since}
	if out, _, _ := tracker.begin(ctx, approved, "t"); out != outcomeBusy {
		t.Fatalf("APPROVED just after Leave: %s, want busy", out)
	}
	time.Sleep(time.Until(left.Add(lease + 50*time.Millisecond)))
	if out, _, err := tracker.begin(ctx, approved, "t"); err != nil || out != outcomeOK {
		t.Fatalf("APPROVED a lease after Leave: %s %v, want ok", out, err)
	}
	// A ticket whose key was taken over (as if its holder had been cut off
	// from Redis for a lease): the next renewal reports it.
	tk, err = g.Begin(ctx, since, []GateItem{{ID: "r-3", To: string(payout.StatusSubmitted), Ref: "tx-3"}})
	if err != nil || tk.Verdicts[0] != GateOurs {
		t.Fatalf("begin: %+v %v", tk, err)
	}
	key := tracker.key(kindRequest, "r-3")
	v, err := readStatusKey(ctx, rs.Client(), key)
	if err != nil {
		t.Fatal(err)
	}
	v.flt = "someone-else"
	rs.Client().Set(ctx, key, formatStatusValue(v), 0)
	select {
	case got := <-lost:
		if got != "0/1 <nil>" {
			t.Fatalf("lost lease reported as %q", got)
		}
	case <-time.After(2 * lease):
		t.Fatal("a taken-over lease was not reported")
	}
	_ = g.End(ctx, tk, false)
}

// stallConn holds back the Produce requests written to it while stalled.
type stallConn struct {
	net.Conn
	s *stall
}

type stall struct {
	mu      sync.Mutex
	on      bool
	release chan struct{}
	held    chan struct{} // one value per Produce request held
}

// newStall returns a stall, off, and the client option that routes an
// engine's Kafka connections through it.
func newStall() (*stall, kgo.Opt) {
	st := &stall{release: make(chan struct{}), held: make(chan struct{}, 16)}
	return st, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return stallConn{Conn: c, s: st}, nil
	})
}

// letGo turns the stall off and sends the requests it held.
func (s *stall) letGo() {
	s.mu.Lock()
	s.on = false
	close(s.release)
	s.mu.Unlock()
}

// awaitStatus waits until e's status record of requestID holds want (the
// held record landed and was confirmed).
func awaitStatus(t *testing.T, e *Engine, requestID string, want payout.Status) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		last, err := e.statuses.last(context.Background(), kindRequest, requestID)
		if err != nil {
			t.Fatal(err)
		}
		if last == string(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("late %s not confirmed: key holds %q", want, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c stallConn) Write(p []byte) (int, error) {
	// A request starts with its length (int32) and its API key (int16);
	// Produce is key 0. franz-go writes each request whole.
	if len(p) >= 6 && binary.BigEndian.Uint16(p[4:6]) == 0 {
		c.s.mu.Lock()
		on, release := c.s.on, c.s.release
		c.s.mu.Unlock()
		if on {
			c.s.held <- struct{}{}
			<-release
		}
	}
	return c.Conn.Write(p)
}

// Two faults together: a tracker's produce outlasts ProduceTimeout (a slow
// broker), and meanwhile another replica reads a later status. The
// timed-out record is still in flight and lands later: had the first
// attempt been abandoned at the timeout, the later status would have been
// emitted first and the earlier one would follow it on the topic. The key
// stays held until franz-go settles the record, so the topic reads PENDING
// then APPROVED.
func TestTimedOutProduceKeepsKeyUntilSettled(t *testing.T) {
	for _, many := range []bool{false, true} {
		t.Run(map[bool]string{false: "webhook", true: "poll page"}[many], func(t *testing.T) {
			testTimedOutProduce(t, many)
		})
	}
}

func testTimedOutProduce(t *testing.T, many bool) {
	f := newFixture(t, fixtureOpts{})
	st, stalled := newStall()
	const lease = 1500 * time.Millisecond
	slow, _ := f.engine(func(c *Config) {
		c.Kafka = append(c.Kafka, stalled)
		c.ProduceTimeout, c.Lease = time.Second, lease
	})
	other, _ := f.engine(func(c *Config) { c.ProduceTimeout, c.Lease = time.Second, lease })
	ctx := context.Background()
	since := mustEpoch(t, slow.statuses)
	ref := singleRef{requestID: "req-slow", batchID: "batch-s", amount: 1000, originAccountID: "acc-1"}
	// Warm up: the slow engine's connections and metadata are ready.
	warm := singleChange(rail.WEpayout, "wp-0", singleRef{requestID: "req-warm", batchID: "batch-s", amount: 1, originAccountID: "acc-1"},
		payout.StatusPending, "", f.clock.Now(), payout.SourceWebhook)
	if res, err := slow.emitRequest(ctx, warm, true, since, nil); err != nil || res != emitNew {
		t.Fatalf("warm-up: %v %v", res, err)
	}

	st.mu.Lock()
	st.on = true
	st.mu.Unlock()
	pending := singleChange(rail.WEpayout, "wp-1", ref, payout.StatusPending, "", f.clock.Now(), payout.SourceWebhook)
	if many {
		// The poll's path: a page of transitions produced together.
		if _, err := slow.emitRequests(ctx, []*payout.StatusChange{pending}, since); !errors.Is(err, errUnavailable) {
			t.Fatalf("stalled PENDING: %v, want unavailable after ProduceTimeout", err)
		}
	} else if _, err := slow.emitRequest(ctx, pending, true, since, nil); !errors.Is(err, errUnavailable) {
		t.Fatalf("stalled PENDING: %v, want unavailable after ProduceTimeout", err)
	}
	select {
	case <-st.held:
	default:
		t.Fatal("the PENDING produce was not held in flight")
	}
	// Another replica reads APPROVED while PENDING is in flight: it may
	// not emit it, for longer than the lease.
	approved := singleChange(rail.WEpayout, "wp-1", ref, payout.StatusApproved, "", f.clock.Now(), payout.SourcePoll)
	if res, err := other.emitRequest(ctx, approved, true, since, nil); !errors.Is(err, errUnavailable) {
		t.Fatalf("APPROVED while PENDING is in flight: %v %v, want unavailable (key held)", res, err)
	}
	// The broker answers at last: PENDING lands and is confirmed.
	st.letGo()
	awaitStatus(t, slow, ref.requestID, payout.StatusPending)
	approved = singleChange(rail.WEpayout, "wp-1", ref, payout.StatusApproved, "", f.clock.Now(), payout.SourcePoll)
	if res, err := other.emitRequest(ctx, approved, true, since, nil); err != nil || res != emitNew {
		t.Fatalf("APPROVED after PENDING landed: %v %v", res, err)
	}
	if got := statusesOf(f.statusEvents(), ref.requestID); fmt.Sprint(got) != "[PENDING APPROVED]" {
		t.Fatalf("topic reads %v, want [PENDING APPROVED]", got)
	}
	if n := testutil.ToFloat64(slow.m.leasesLost); n != 0 {
		t.Fatalf("leases lost: %v", n)
	}
}

// A producer that could fail a record whose outcome is unknown is refused.
func TestNonIdempotentProducerRefused(t *testing.T) {
	for _, opt := range []kgo.Opt{kgo.DisableIdempotentWrite(), kgo.AllowIdempotentProduceCancellation()} {
		cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckIdempotentProducer(cl); err == nil {
			t.Errorf("%T accepted", opt)
		}
		cl.Close()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := CheckIdempotentProducer(cl); err != nil {
		t.Fatalf("default client refused: %v", err)
	}
}

// A renewal to a Redis that does not answer gives up within its slot, so
// that the renewals keep their rate: one that waited for a client-wide
// timeout (seconds) would let a lease run out between two of them.
func TestRenewalGivesUpWithinItsSlot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		DialTimeout: time.Second, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer rdb.Close()
	const lease = 2 * time.Second
	s := newStatusStore(rdb, "p:", time.Hour, lease)
	lost := make(chan error, 10)
	start := time.Now()
	h := s.keepAlive([]transition{{kind: kindRequest, id: "r", to: "SUBMITTED"}}, []string{"tok"}, []string{""}, false,
		func(held, want int, err error) { lost <- err })
	defer h.stop()
	select {
	case err := <-lost:
		if err == nil {
			t.Fatal("renewal reported a takeover, want a timeout")
		}
		if d := time.Since(start); d > lease/2 {
			t.Fatalf("the first renewal gave up after %v, past half a lease", d)
		}
	case <-time.After(lease):
		t.Fatal("a renewal to an unanswering Redis did not give up within a lease")
	}
}

// Two faults together (the chaos suite's seed 2 on a real Kafka): the
// dispatcher's SUBMITTED is being produced (a broker fails over), and Redis
// loses its data, the attempt's lease with it. A webhook's APPROVED then
// finds an empty key. Emitted at once, it would precede the SUBMITTED still
// in flight. The grace after the new epoch marker holds it off until the
// holder has written its attempt back at its next renewal; the key is then
// busy until the SUBMITTED is confirmed, and APPROVED follows it.
func TestRedisLossDuringAttemptKeepsOrder(t *testing.T) {
	rs := testenv.RedisOwn(t)
	const lease, grace = time.Second, time.Second
	g := NewGate(rs.Client(), rs.Prefix(), lease)
	g.SetLossGrace(grace)
	tracker := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second).withLossGrace(grace)
	ctx := context.Background()
	since, err := g.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tracker.epoch(ctx); err != nil { // the tracker runs too
		t.Fatal(err)
	}
	item := []GateItem{{ID: "r-1", To: string(payout.StatusSubmitted), Ref: "tx-1"}}
	// A first start (a marker written by a process that never saw one)
	// starts no grace.
	tk, err := g.Begin(ctx, since, item)
	if err != nil || tk.Verdicts[0] != GateOurs {
		t.Fatalf("SUBMITTED at a first start: %+v %v", tk, err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	approved := transition{kind: kindRequest, id: "r-1", to: string(payout.StatusApproved), ref: "tx-1", final: true, verified: true, since: since}
	if out, _, err := tracker.begin(ctx, approved, "t-1"); err != nil || out != outcomeBusy {
		t.Fatalf("APPROVED just after the loss: %s %v, want busy (grace)", out, err)
	}
	time.Sleep(grace + 200*time.Millisecond)
	if out, _, err := tracker.begin(ctx, approved, "t-2"); err != nil || out != outcomeBusy {
		t.Fatalf("APPROVED after the grace, SUBMITTED still in flight: %s %v, want busy (lease written back)", out, err)
	}
	if err := g.End(ctx, tk, true); err != nil {
		t.Fatal(err)
	}
	out, from, err := tracker.begin(ctx, approved, "t-3")
	if err != nil || out != outcomeOK || from != string(payout.StatusSubmitted) {
		t.Fatalf("APPROVED after SUBMITTED was confirmed: %s %q %v", out, from, err)
	}
}

// Within the loss grace a begin on a key that holds no status answers busy
// without writing to it: a key holding only an abandoned attempt (its event
// may be on the topic) keeps it, so a lower status is still refused after
// the grace. Granting and then releasing would delete it.
func TestLossGraceLeavesTheKeyAsItWas(t *testing.T) {
	rs := testenv.RedisOwn(t)
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second).withLossGrace(time.Second)
	ctx := context.Background()
	if _, err := s.epoch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().FlushAll(ctx).Err(); err != nil { // a loss
		t.Fatal(err)
	}
	cur, _, err := s.currentEpochAt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if epochCreated(cur) == 0 {
		t.Fatalf("marker written after a loss: %q, want its creation time", cur)
	}
	key := s.key(kindRequest, "r-9")
	abandoned := formatStatusValue(statusValue{fl: "APPROVED", flt: "old", fle: "0", flx: "tx-9"})
	if err := rs.Client().Set(ctx, key, abandoned, 0).Err(); err != nil {
		t.Fatal(err)
	}
	approved := transition{kind: kindRequest, id: "r-9", to: string(payout.StatusApproved), ref: "tx-9", final: true, verified: true, since: cur}
	if out, _, err := s.begin(ctx, approved, "poll"); err != nil || out != outcomeBusy {
		t.Fatalf("APPROVED within the grace: %s %v, want busy", out, err)
	}
	if got, err := rs.Client().Get(ctx, key).Result(); err != nil || got != abandoned {
		t.Fatalf("key after a begin within the grace: %q %v, want it unchanged", got, err)
	}
	time.Sleep(time.Second + 100*time.Millisecond)
	submitted := transition{kind: kindRequest, id: "r-9", to: string(payout.StatusSubmitted), ref: "tx-9", verified: true, since: cur}
	if out, _, err := s.begin(ctx, submitted, "dispatcher"); err != nil || out != outcomeStale {
		t.Fatalf("SUBMITTED after the grace, APPROVED abandoned: %s %v, want stale", out, err)
	}
}
