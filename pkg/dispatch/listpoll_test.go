package dispatch

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
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
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("listpoll", 3)
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
	if at := time.UnixMilli(int64(due)); at.Before(f.clock.Now().Add(listedFirstPollDelay - time.Second)) {
		t.Fatalf("first poll due at %v, want one interval after the listing (%v)", at, f.clock.Now())
	}

	// The tracker's first poll, when due.
	reg := prometheus.NewRegistry()
	tr, err := track.New(track.Config{
		Kafka: []kgo.Opt{kgo.SeedBrokers(f.kafka.Brokers()...)}, Codec: f.codec, Topics: f.topics,
		Redis: rdb, Prefix: f.redis.Prefix(), Wompi: rl, LossGrace: -1,
		Now:    func() time.Time { return f.clock.Now().Add(listedFirstPollDelay + time.Second) },
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
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	b := simpleBatch("listfinal", 2)
	ctx := context.Background()
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
	hand, found, err := submitted.New(f.redis.Client(), f.redis.Prefix(), 0).Payout(ctx, payoutID)
	if err != nil || !found || hand.PollDigest != "" {
		t.Fatalf("hand-off: found %v, digest %q, %v; want no digest", found, hand.PollDigest, err)
	}
	due, err := f.redis.Client().ZScore(ctx, f.redis.Prefix()+"{poll}", payoutID).Result()
	if err != nil {
		t.Fatal(err)
	}
	if at := time.UnixMilli(int64(due)); at.After(f.clock.Now()) {
		t.Fatalf("first poll due at %v, want at once (%v)", at, f.clock.Now())
	}
}

// A PENDING goes out only once its SUBMITTED is known written: a failed
// SUBMITTED takes its PENDING with it (not produced), and a failed PENDING
// after a written SUBMITTED is abandoned. Either way the attempt is one
// known not written, and the tracker may emit PENDING later.
func TestPendingFollowsOnlyAWrittenSubmitted(t *testing.T) {
	f, _, j := gatedJob(t)
	ctx, since := j.hard, j.statusSince
	status := func(key string) *kgo.Record {
		return &kgo.Record{Topic: f.topics.Status, Key: []byte(key), Value: []byte("x")}
	}
	noTopic := func(key string) *kgo.Record { return &kgo.Record{Key: []byte(key), Value: []byte("x")} } // fails at once
	recs := []*kgo.Record{status("req-both"), noTopic("req-subfail"), status("req-pendfail")}
	then := []*kgo.Record{status("req-both"), status("req-subfail"), noTopic("req-pendfail")}
	items := []track.GateItem{
		{ID: "req-both", To: string(payout.StatusPending), Ref: "tx-b"},
		{ID: "req-subfail", To: string(payout.StatusPending), Ref: "tx-s"},
		{ID: "req-pendfail", To: string(payout.StatusPending), Ref: "tx-p"},
	}
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
	tracker := track.NewGate(f.redis.Client(), f.redis.Prefix(), time.Minute)
	tracker.SetLossGrace(-1)
	tk, err := tracker.Begin(ctx, since, items)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tracker.End(ctx, tk, false) }()
	if tk.Verdicts[0] != track.GateSkip {
		t.Errorf("PENDING again after a written PENDING: verdict %v, want skip", tk.Verdicts[0])
	}
	for i := 1; i < 3; i++ {
		if tk.Verdicts[i] != track.GateOurs || tk.Previous[i] != "" {
			t.Errorf("%s: PENDING after an abandoned attempt: verdict %v, previous %q, want ours after nothing",
				items[i].ID, tk.Verdicts[i], tk.Previous[i])
		}
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
