package dispatch

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/track"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The listing of a new payout is its first poll: every transaction it reads
// PENDING gets SUBMITTED then PENDING from the dispatcher (the PENDING with
// the tracker's eventId), the hand-off holds the listing's digest and the
// first poll comes an interval later, and that poll, reading the same
// transactions, emits nothing and asks the status gate nothing.
func TestListingServesAsFirstPoll(t *testing.T) {
	t.Parallel()
	t.Run("batch PENDING from the dispatcher", func(t *testing.T) { testListingServesAsFirstPoll(t, false) })
	// The provider's webhook for a new payout (payout.updated, PENDING)
	// often reaches the tracker before the dispatcher's own batch PENDING,
	// which is then refused: the requests' statuses are what counts.
	t.Run("batch PENDING from a webhook first", func(t *testing.T) { testListingServesAsFirstPoll(t, true) })
}

func testListingServesAsFirstPoll(t *testing.T, webhookFirst bool) {
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("listpoll", 3)
	if webhookFirst {
		g := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
		g.SetLossGrace(-1)
		ctx := context.Background()
		since, err := g.Epoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tk, err := g.Begin(ctx, since, []track.GateItem{{Batch: true, ID: b.BatchID, To: string(payout.BatchPending), Ref: "payout-by-webhook"}})
		if err != nil || tk.Verdicts[0] != track.GateOurs {
			t.Fatalf("the webhook's batch PENDING: %v %v", tk, err)
		}
		if err := g.End(ctx, tk, true); err != nil {
			t.Fatal(err)
		}
	}
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var payoutID string
	idx := byStatus(f.statuses())
	for _, tx := range b.Transactions {
		subs, pends := idx[tx.RequestID][payout.StatusSubmitted], idx[tx.RequestID][payout.StatusPending]
		if len(subs) != 1 || len(pends) != 1 {
			t.Fatalf("%s: %d SUBMITTED and %d PENDING, want 1 each", tx.RequestID, len(subs), len(pends))
		}
		s, p := subs[0], pends[0]
		if s.TransactionID == nil || p.TransactionID == nil || *p.TransactionID != *s.TransactionID || p.PayoutID == nil {
			t.Fatalf("%s: PENDING names transaction %v, SUBMITTED %v", tx.RequestID, p.TransactionID, s.TransactionID)
		}
		payoutID = *p.PayoutID
		if p.Source != payout.SourceDispatcher || p.PreviousStatus == nil || *p.PreviousStatus != payout.StatusSubmitted {
			t.Errorf("%s: PENDING from %s after %v, want DISPATCHER after SUBMITTED", tx.RequestID, p.Source, p.PreviousStatus)
		}
		if want := payout.EventID("status", tx.RequestID, string(payout.StatusPending), *p.TransactionID); p.EventID != want {
			t.Errorf("%s: PENDING eventId %s, want the tracker's %s", tx.RequestID, p.EventID, want)
		}
	}
	f.checkLifecycles() // SUBMITTED before PENDING, per request
	if n := testutil.ToFloat64(e.m.listedPending); n != float64(len(b.Transactions)) {
		t.Fatalf("listed PENDING counted %v, want %d", n, len(b.Transactions))
	}

	ctx := context.Background()
	rdb := f.redis.Client()
	hand, found, err := submitted.New(rdb, f.redis.Prefix(), 0).Payout(ctx, payoutID)
	if err != nil || !found {
		t.Fatalf("hand-off of %s: found %v, %v", payoutID, found, err)
	}
	rl := wompi.NewRail(f.sim.Client(http.DefaultClient), wompi.RailConfig{})
	var d track.PollDigest
	for it, err := range rl.Items(ctx, payoutID) {
		if err != nil {
			t.Fatal(err)
		}
		d.Add(it.ProviderID, it.ProviderStatus, it.ID, it.Reason)
	}
	if hand.PollDigest != d.String() {
		t.Fatalf("hand-off poll digest %q, a poll reads %q", hand.PollDigest, d.String())
	}
	due, err := rdb.ZScore(ctx, f.redis.Prefix()+"{poll}", payoutID).Result()
	if err != nil {
		t.Fatal(err)
	}
	if at := time.UnixMilli(int64(due)); at.Before(f.clock.Now().Add(track.FirstPollInterval - time.Second)) {
		t.Fatalf("first poll due at %v, want one interval after the listing (%v)", at, f.clock.Now())
	}

	// The tracker's first poll, when due.
	reg := prometheus.NewRegistry()
	tr, err := track.New(track.Config{
		Kafka: []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...)}, Codec: f.codec, Topics: f.topics,
		Redis: rdb, Prefix: f.redis.Prefix(), Wompi: rl, LossGrace: -1,
		Now:    func() time.Time { return f.clock.Now().Add(track.FirstPollInterval + time.Second) },
		Logger: testLogger(), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	res, err := tr.PollOnce(ctx)
	if err != nil || res.Claimed != 1 || res.Errors != 0 {
		t.Fatalf("tracker poll: %+v, %v", res, err)
	}
	if res.Transitions != 0 {
		t.Fatalf("the first poll emitted %d transitions, want none", res.Transitions)
	}
	// Without the digest its attempts would each be refused by the gate as
	// duplicates. (The batch's PENDING is checked at every poll.)
	if n := counterSum(t, reg, "payouts_tracker_regressions_suppressed_total", "request") + counterSum(t, reg, "payouts_tracker_duplicates_total", "request"); n != 0 {
		t.Fatalf("the first poll asked the gate again: %v statuses refused as duplicates or late", n)
	}
	if got := byStatus(f.statuses()); len(got[b.Transactions[0].RequestID][payout.StatusPending]) != 1 {
		t.Fatal("PENDING emitted twice")
	}
}

// A transaction the listing reads in another status (already final, say)
// gets SUBMITTED only, as before; the hand-off holds no digest and the first
// poll is due at once, so the tracker emits what the listing read.
func TestListingWithAFinalTransactionLeavesTheFirstPoll(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("listfinal", 2)
	// Every transaction settles between the POST and the listing.
	f.tap.afterPost = func(int) { f.sim.SettleAll() }
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	idx := byStatus(f.statuses())
	var payoutID string
	for _, tx := range b.Transactions {
		if n := len(idx[tx.RequestID][payout.StatusPending]); n != 0 {
			t.Fatalf("%s: PENDING emitted for a transaction listed APPROVED", tx.RequestID)
		}
		subs := idx[tx.RequestID][payout.StatusSubmitted]
		if len(subs) != 1 || subs[0].PayoutID == nil {
			t.Fatalf("%s: %d SUBMITTED", tx.RequestID, len(subs))
		}
		payoutID = *subs[0].PayoutID
	}
	f.noListedFirstPoll(payoutID)
}

// A PENDING goes out only once its SUBMITTED is known written: a failed
// SUBMITTED takes its PENDING with it (not produced) and its item is
// abandoned at SUBMITTED, so a retry may emit both; a failed PENDING after
// a written SUBMITTED is abandoned at PENDING, so a retry emits neither
// (SUBMITTED may not follow a PENDING that may be written) and the
// tracker's PENDING still may.
func TestPendingFollowsOnlyAWrittenSubmitted(t *testing.T) {
	t.Parallel()
	f, _, j := gatedJob(t)
	ctx, since := j.hard, j.statusSince
	status := func(key string) *kgo.Record {
		return &kgo.Record{Topic: f.topics.Status, Key: []byte(key), Value: []byte("x")}
	}
	noTopic := func(key string) *kgo.Record { return &kgo.Record{Key: []byte(key), Value: []byte("x")} } // fails at once
	recs := []*kgo.Record{status("req-both"), noTopic("req-subfail"), status("req-pendfail")}
	then := []*kgo.Record{status("req-both"), status("req-subfail"), noTopic("req-pendfail")}
	item := func(id string) track.GateItem {
		return track.GateItem{ID: id, To: string(payout.StatusPending), Via: string(payout.StatusSubmitted), Ref: "tx-" + id}
	}
	items := []track.GateItem{item("req-both"), item("req-subfail"), item("req-pendfail")}
	n, err := j.produceGatedThen(recs, then, items, nil)
	if err == nil {
		t.Fatal("a produce with failed records succeeded")
	}
	if n != 1 {
		t.Fatalf("%d items confirmed, want 1", n)
	}
	onTopic := map[string]int{}
	f.kafka.Settle(t, 5*time.Second, f.topics.Status)
	for _, r := range f.kafka.ReadAll(t, f.topics.Status) {
		onTopic[string(r.Key)]++
	}
	if onTopic["req-both"] != 2 || onTopic["req-pendfail"] != 1 {
		t.Fatalf("records on the topic %v, want 2 for req-both and 1 for req-pendfail", onTopic)
	}
	if onTopic["req-subfail"] != 0 {
		t.Fatal("PENDING produced although its SUBMITTED failed")
	}
	other := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	other.SetLossGrace(-1)
	retry, err := other.Begin(ctx, since, items)
	if err != nil {
		t.Fatal(err)
	}
	want := []track.GateVerdict{track.GateSkip, track.GateOurs, track.GateSkip}
	for i, v := range retry.Verdicts {
		if v != want[i] {
			t.Errorf("%s: the dispatcher's retry got %v, want %v", items[i].ID, v, want[i])
		}
	}
	if err := other.End(ctx, retry, false); err != nil {
		t.Fatal(err)
	}
	tk, err := other.Begin(ctx, since, []track.GateItem{
		{ID: "req-pendfail", To: string(payout.StatusPending), Ref: "tx-req-pendfail"},
		{ID: "req-both", To: string(payout.StatusApproved), Ref: "tx-req-both"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.End(ctx, tk, false) }()
	if tk.Verdicts[0] != track.GateOurs {
		t.Errorf("the tracker's PENDING after a failed one: %v, want ours", tk.Verdicts[0])
	}
	// Confirmed at PENDING, key by key (the ticket also ended one at its
	// Via): APPROVED follows PENDING.
	if tk.Verdicts[1] != track.GateOurs || tk.Previous[1] != string(payout.StatusPending) {
		t.Errorf("APPROVED after a written PENDING: %v after %q, want ours after PENDING", tk.Verdicts[1], tk.Previous[1])
	}
}

// noListedFirstPoll asserts that the listing did not serve as the payout's
// first poll: the hand-off holds no digest and the tracker's first poll is
// due at once.
func (f *fixture) noListedFirstPoll(payoutID string) {
	f.t.Helper()
	ctx := context.Background()
	hand, found, err := submitted.New(f.redis.Client(), f.redis.Prefix(), 0).Payout(ctx, payoutID)
	if err != nil || !found || hand.PollDigest != "" {
		f.t.Fatalf("hand-off of %q: found %v, digest %q, %v; want no digest", payoutID, found, hand.PollDigest, err)
	}
	due, err := f.redis.Client().ZScore(ctx, f.redis.Prefix()+"{poll}", payoutID).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	if at := time.UnixMilli(int64(due)); at.After(f.clock.Now()) {
		f.t.Fatalf("first poll due at %v, want at once (%v)", at, f.clock.Now())
	}
}

// counterSum sums the series of a counter family in reg whose kind label is
// kind.
func counterSum(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" && l.GetValue() == kind {
						n += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return n
}

// Two faults (a review's find): the tracker's PENDING for a request may be
// on the topic (its holder closed after the produce; the lease ran out)
// when the dispatcher's item for it, SUBMITTED then PENDING, begins. The
// item is granted only where SUBMITTED may follow, so neither event is
// emitted: SUBMITTED after that PENDING would break the lifecycle.
func TestSubmittedNeverFollowsAPerhapsWrittenPending(t *testing.T) {
	t.Parallel()
	f, _, j := gatedJob(t)
	ctx, since := j.hard, j.statusSince
	const id = "req-race"
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), 300*time.Millisecond)
	tracker.SetLossGrace(-1)
	tk, err := tracker.Begin(ctx, since, []track.GateItem{{ID: id, To: string(payout.StatusPending), Ref: "tx-1"}})
	if err != nil || tk.Verdicts[0] != track.GateOurs {
		t.Fatalf("tracker begin: %v %v", tk, err)
	}
	tracker.Leave(tk) // PENDING perhaps written; the lease runs out
	time.Sleep(600 * time.Millisecond)
	sub := &kgo.Record{Topic: f.topics.Status, Key: []byte(id), Value: []byte("SUBMITTED")}
	pend := &kgo.Record{Topic: f.topics.Status, Key: []byte(id), Value: []byte("PENDING")}
	n, err := j.produceGatedThen([]*kgo.Record{sub}, []*kgo.Record{pend},
		[]track.GateItem{{ID: id, To: string(payout.StatusPending), Via: string(payout.StatusSubmitted), Ref: "tx-1"}}, nil)
	if err != nil || n != 0 {
		t.Fatalf("dispatcher's item: %d confirmed, %v; want none and no error", n, err)
	}
	f.kafka.Settle(t, 5*time.Second, f.topics.Status)
	for _, r := range f.kafka.ReadAll(t, f.topics.Status) {
		if string(r.Key) == id {
			t.Fatalf("%s emitted after a perhaps-written PENDING", r.Value)
		}
	}
}

// The same two faults through a whole batch: the request whose PENDING the
// tracker perhaps wrote gets neither SUBMITTED nor PENDING from the
// dispatcher, the others both, and no poll digest is recorded (the tracker
// polls at once and emits what it reads).
func TestBatchSkipsARequestWithAPerhapsWrittenPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("racebatch", 2)
	early := b.Transactions[0].RequestID
	ctx := context.Background()
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), 300*time.Millisecond)
	tracker.SetLossGrace(-1)
	since, err := tracker.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tracker.Begin(ctx, since, []track.GateItem{{ID: early, To: string(payout.StatusPending), Ref: "tx-by-webhook"}})
	if err != nil || tk.Verdicts[0] != track.GateOurs {
		t.Fatalf("tracker's PENDING: %v %v", tk, err)
	}
	tracker.Leave(tk)
	time.Sleep(600 * time.Millisecond)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	idx := byStatus(f.statuses())
	if n := len(idx[early][payout.StatusSubmitted]) + len(idx[early][payout.StatusPending]); n != 0 {
		t.Fatalf("%s: %d events from the dispatcher after a perhaps-written PENDING", early, n)
	}
	other := idx[b.Transactions[1].RequestID]
	if n := testutil.ToFloat64(e.m.listedPending); n != 1 {
		t.Fatalf("listed PENDING counted %v, want 1", n)
	}
	if len(other[payout.StatusSubmitted]) != 1 || len(other[payout.StatusPending]) != 1 {
		t.Fatalf("the other request: %d SUBMITTED, %d PENDING; want 1 each", len(other[payout.StatusSubmitted]), len(other[payout.StatusPending]))
	}
	payoutID := *other[payout.StatusPending][0].PayoutID
	f.noListedFirstPoll(payoutID)
}

// listingRail is a batch rail whose listing of a payout's transactions
// edit rewrites.
type listingRail struct {
	rail.BatchRail
	edit func([]rail.ItemRef) []rail.ItemRef
}

func (r listingRail) ItemRefs(ctx context.Context, providerBatchID string) iter.Seq2[rail.ItemRef, error] {
	return func(yield func(rail.ItemRef, error) bool) {
		var refs []rail.ItemRef
		for ir, err := range r.BatchRail.ItemRefs(ctx, providerBatchID) {
			if err != nil {
				yield(rail.ItemRef{}, err)
				return
			}
			refs = append(refs, ir)
		}
		for _, ir := range r.edit(refs) {
			if !yield(ir, nil) {
				return
			}
		}
	}
}

// A listing that does not match the batch one to one (a transaction of no
// request of the batch, one without a reference, a request not listed) is
// not the payout's first poll: the dispatcher emits what it can, records no
// digest, and the tracker polls at once.
func TestListingThatDoesNotMatchTheBatchIsNoPoll(t *testing.T) {
	t.Parallel()
	pending := rail.ItemRef{Status: payout.StatusPending, ProviderStatus: "PENDING"}
	cases := map[string]func([]rail.ItemRef) []rail.ItemRef{
		"another request's": func(r []rail.ItemRef) []rail.ItemRef {
			x := pending
			x.ID, x.ProviderID = "not-of-this-batch", "tx-extra"
			return append(r, x)
		},
		"no reference": func(r []rail.ItemRef) []rail.ItemRef {
			x := pending
			x.ProviderID = "tx-anonymous"
			return append(r, x)
		},
		"a request not listed": func(r []rail.ItemRef) []rail.ItemRef { return r[1:] },
		"one not listed, another's instead": func(r []rail.ItemRef) []rail.ItemRef {
			x := pending
			x.ID, x.ProviderID = "not-of-this-batch", "tx-extra"
			return append(r[1:], x)
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, fixtureOpt{})
			e := f.engine(func(c *Config) { c.Wompi = listingRail{BatchRail: c.Wompi, edit: edit} })
			b := simpleBatch("mismatch", 2)
			f.produce(f.topics.Batches, b)
			stop, _ := f.run(e)
			eventually(t, "batch submitted", func() bool { return outcome(e, "submitted") == 1 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			var payoutID string
			for _, s := range f.statuses() {
				if s.Status == payout.StatusSubmitted && s.PayoutID != nil {
					payoutID = *s.PayoutID
				}
			}
			f.noListedFirstPoll(payoutID)
			f.checkLifecycles()
		})
	}
}

// A client closed between the two produces (a deploy): the SUBMITTED are
// written, the PENDING may have been sent. Every key stays held for the
// gate's lease, so the tracker cannot put APPROVED on the topic before a
// PENDING that may still land.
func TestClosedClientBetweenTheProducesLeavesKeysHeld(t *testing.T) {
	t.Parallel()
	f, e, j := gatedJob(t)
	ctx, since := j.hard, j.statusSince
	e.betweenProduces = e.Close
	sub := &kgo.Record{Topic: f.topics.Status, Key: []byte("req-c"), Value: []byte("SUBMITTED")}
	pend := &kgo.Record{Topic: f.topics.Status, Key: []byte("req-c"), Value: []byte("PENDING")}
	_, err := j.produceGatedThen([]*kgo.Record{sub}, []*kgo.Record{pend},
		[]track.GateItem{{ID: "req-c", To: string(payout.StatusPending), Via: string(payout.StatusSubmitted), Ref: "tx-c"}}, nil)
	if !errors.Is(err, kgo.ErrClientClosed) {
		t.Fatalf("second produce on a closed client: %v", err)
	}
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	tracker.SetLossGrace(-1)
	tk, err := tracker.Begin(ctx, since, []track.GateItem{{ID: "req-c", To: string(payout.StatusApproved), Ref: "tx-c"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tracker.End(ctx, tk, false) }()
	if tk.Verdicts[0] != track.GateBusy {
		t.Fatalf("APPROVED after a close between the produces: verdict %v, want busy (key held)", tk.Verdicts[0])
	}
}
