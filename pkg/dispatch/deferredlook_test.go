package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// lookedAcrossALoss is a single-payout batch of one payee first written
// before a Redis loss (a first start's epoch, then the loss: the next
// epoch is a recovery's), and the fixture's rail, at ten o'clock.
func lookedAcrossALoss(t *testing.T, i int, name string) (*fixture, singleRail, payout.Batch, *kgo.Record) {
	t.Helper()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	r := singleRailsAt(t, f.clock)[i](t)
	tenOClock(f, r)
	ctx := context.Background()
	first := singleBatch(r, name+"-first", 1)
	if err := r.engine(f, nil).process(ctx, &first, &kgo.Record{Topic: f.topics.Batches, Timestamp: time.Now()}, testLogger()); err != nil {
		t.Fatalf("first start: %v", err)
	}
	b := singleBatch(r, name, 1)
	src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	return f, r, b, src
}

// statusFiller writes n records of other keys to every partition of the
// status topic: the traffic of other payees, which the look of a payee's
// partitions reads through.
func statusFiller(t *testing.T, f *fixture, n int) {
	t.Helper()
	recs := make([]*kgo.Record, 0, 2*n)
	for p := range int32(2) {
		for k := range n {
			recs = append(recs, &kgo.Record{Partition: p, Key: fmt.Appendf(nil, "filler-%d-%d", p, k), Value: []byte("x")})
		}
	}
	cl := f.kafka.Client(t, kgo.DefaultProduceTopic(f.topics.Status), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// deferredAgain runs one attempt of b (read from src) on a day whose budget
// has no room for it, and returns the copy it wrote, decoded, and its
// record, and the records its look on the status topic read (-1: none).
func deferredAgain(t *testing.T, f *fixture, r singleRail, b payout.Batch, src *kgo.Record) (payout.Batch, *kgo.Record, int64) {
	t.Helper()
	e := r.engine(f, func(c *Config) { c.DailyLimitCents = 100 })
	read := int64(-1)
	e.statusLooked = func(n int64) { read = n }
	before := len(f.kafka.ReadAll(t, f.topics.BatchesDeferred))
	if err := e.process(context.Background(), &b, src, testLogger()); err != nil {
		t.Fatalf("attempt %d: %v", b.Attempt, err)
	}
	recs := f.kafka.ReadAll(t, f.topics.BatchesDeferred)
	if len(recs) != before+1 {
		t.Fatalf("attempt %d: %d copies written, want 1", b.Attempt, len(recs)-before)
	}
	cp := recs[len(recs)-1]
	var nb payout.Batch
	if err := f.codec.DecodeBatch(cp.Value, &nb); err != nil {
		t.Fatal(err)
	}
	return nb, cp, read
}

// A single-payout batch first written before a Redis loss is deferred
// day after day after it (its account's budget full). Each copy looked on
// the status topic for its payees' REJECTED from the batch's createdAt:
// the read grew by a day of every payee's statuses each time, and once it
// could not end within RefusalLookLimit the batch was retried in place for
// good (the read only grows), its deferred partition stalled. A copy now
// carries the offsets its attempt looked up to (headerStatusLooked): the
// next one reads only what was written since.
func TestDeferredCopyLooksOnlyPastItsLastLook(t *testing.T) {
	t.Parallel()
	eachSingleRailIndex(t, func(t *testing.T, i int) {
		f, r, b, src := lookedAcrossALoss(t, i, "look-resumed")
		const filler = 200
		for day := range 4 {
			statusFiller(t, f, filler)
			nb, cp, read := deferredAgain(t, f, r, b, src)
			if read < 0 {
				t.Fatalf("day %d: no look on the status topic", day)
			}
			if read < filler {
				t.Fatalf("day %d: the look read %d records, fewer than the %d written since the last", day, read, filler)
			}
			if day > 0 && read > filler+20 {
				t.Errorf("day %d: the look read %d records, want about the %d written since the last look", day, read, filler)
			}
			b, src = nb, cp
			f.clock.Advance(24 * time.Hour)
		}
		// Once the budget has room, the payee is paid once.
		e := r.engine(f, nil)
		if err := e.process(context.Background(), &b, src, testLogger()); err != nil {
			t.Fatal(err)
		}
		if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 1 {
			t.Errorf("payee paid %d times, want 1", n)
		}
	})
}

// A copy without the header (written by an earlier version, or its
// header stripped) looks from the batch's createdAt, as before.
func TestDeferredCopyWithoutItsLookLooksFromCreatedAt(t *testing.T) {
	t.Parallel()
	f, r, b, src := lookedAcrossALoss(t, 0, "look-headless")
	const filler = 100
	statusFiller(t, f, filler)
	nb, cp, _ := deferredAgain(t, f, r, b, src)
	if len(cp.Headers) == 0 {
		t.Fatal("the copy carries no header of its look")
	}
	statusFiller(t, f, filler)
	cp.Headers = nil
	_, _, read := deferredAgain(t, f, r, nb, cp)
	if read < 2*filler {
		t.Errorf("a copy without the header read %d records, want every one since createdAt (%d and more)", read, 2*filler)
	}
}

// The header never hides a REJECTED written after the offsets it names:
// after the copy was written, the payee's REJECTED for this batch lands
// on the status topic (an attempt's refusal whose record a later Redis
// loss took). The copy's look, from those offsets, finds it: the payee is
// ended REJECTED again, never posted.
func TestDeferredCopyFindsARejectedWrittenAfterItsLook(t *testing.T) {
	t.Parallel()
	eachSingleRailIndex(t, func(t *testing.T, i int) {
		f, r, b, src := lookedAcrossALoss(t, i, "look-later-rejected")
		statusFiller(t, f, 50)
		nb, cp, _ := deferredAgain(t, f, r, b, src)
		if len(cp.Headers) == 0 {
			t.Fatal("the copy carries no header of its look")
		}
		rejectedThenRead(t, f, r, b, nb, cp)
	})
}

// A copy whose header names offsets past the partitions' ends (the status
// topic deleted and made again; a copy replayed from elsewhere) looks
// from the batch's first write: read from those offsets, it would read
// nothing, and miss a payee's REJECTED.
func TestDeferredCopyWithOffsetsPastTheEndLooksFromCreatedAt(t *testing.T) {
	t.Parallel()
	f, r, b, src := lookedAcrossALoss(t, 0, "look-past-end")
	nb, cp, _ := deferredAgain(t, f, r, b, src)
	cp.Headers = []kgo.RecordHeader{{Key: headerStatusLooked, Value: []byte(f.topics.Status + " 0:1000000,1:1000000")}}
	rejectedThenRead(t, f, r, b, nb, cp)
}

// rejectedThenRead writes the REJECTED of b's payee for b on the status
// topic, as a dispatcher does, then runs the copy nb (its record cp) the
// next day: the payee must be ended REJECTED again, never posted.
func rejectedThenRead(t *testing.T, f *fixture, r singleRail, b, nb payout.Batch, cp *kgo.Record) {
	t.Helper()
	rid := b.Transactions[0].RequestID
	v, err := f.codec.AppendStatusChange(nil, dispatcherRejectedPayee(f, b, 0))
	if err != nil {
		t.Fatal(err)
	}
	f.kafka.Produce(t, f.topics.Status, &kgo.Record{Key: []byte(rid), Value: v})
	statusFiller(t, f, 50)
	f.clock.Advance(24 * time.Hour)
	e := r.engine(f, nil)
	if err := e.process(context.Background(), &nb, cp, testLogger()); err != nil {
		t.Fatal(err)
	}
	if n := r.sim.Accepted(rid); n != 0 {
		t.Fatalf("payee REJECTED on the status topic, then paid %d times", n)
	}
	if n := testutil.ToFloat64(e.m.refusalScans.WithLabelValues("true")); n != 1 {
		t.Errorf("looks that found the REJECTED: %v, want 1", n)
	}
	if rj := byStatus(statusesOf(f, rid))[rid][payout.StatusRejected]; len(rj) != 2 || rj[0].EventID != rj[1].EventID {
		t.Errorf("payee's REJECTED %v: want the same event again", rj)
	}
}

// What happens to the batch when its look cannot end within
// RefusalLookLimit (here the limit is cut to nothing; in production: a
// status topic read from days back): the attempt fails before any POST or
// copy, counted as refusal_scans_total{found="error"}, and is retried in
// place by its worker (worker.handle), which holds its partition
// meanwhile. Nothing is paid on a guess.
func TestStatusLookPastItsLimitFailsTheAttempt(t *testing.T) {
	t.Parallel()
	f, r, b, src := lookedAcrossALoss(t, 0, "look-too-long")
	e := r.engine(f, nil)
	e.refusalLimit = time.Nanosecond
	for range 2 {
		bb := b
		err := e.process(context.Background(), &bb, src, testLogger())
		if err == nil || !strings.Contains(err.Error(), "TOPIC_STATUS") {
			t.Fatalf("attempt whose look could not end: %v, want the look's error", err)
		}
	}
	if n := testutil.ToFloat64(e.m.refusalScans.WithLabelValues("error")); n != 2 {
		t.Errorf("failed looks: %v, want 2", n)
	}
	if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 0 {
		t.Errorf("paid %d times without its look", n)
	}
	if n := len(f.kafka.ReadAll(t, f.topics.BatchesDeferred)); n != 0 {
		t.Errorf("%d copies deferred, want none: the batch is retried in place", n)
	}
}

// eachSingleRailIndex runs body for each single-payout rail by its index
// in singleRails (lookedAcrossALoss builds the rail on its fixture's
// clock).
func eachSingleRailIndex(t *testing.T, body func(t *testing.T, i int)) {
	t.Helper()
	for i := range singleRails(t) {
		t.Run(fmt.Sprint(i), func(t *testing.T) { body(t, i) })
	}
}

// statusesOf decodes the status topic's records keyed rid (the others may
// be statusFiller's).
func statusesOf(f *fixture, rid string) []payout.StatusChange {
	f.t.Helper()
	var out []payout.StatusChange
	for _, r := range f.kafka.ReadAll(f.t, f.topics.Status) {
		if string(r.Key) != rid {
			continue
		}
		var sc payout.StatusChange
		if err := f.codec.DecodeStatusChange(r.Value, &sc); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, sc)
	}
	return out
}

// The header covers only the payees the look went for and found no
// REJECTED of: a copy holding one it did not look for (its refusal in the
// batch's record) or found refused (its lookup not ended) carries none,
// and looks from the batch's first write. It is read back only for the
// topic it names, and only when it is the record's one such header.
func TestLookedHeaderCoversOnlyPayeesLookedForAndNotFound(t *testing.T) {
	b := &payout.Batch{Transactions: []payout.Transaction{{RequestID: "a"}, {RequestID: "b"}}}
	look := &lookSpan{topic: "st", id: "ab12", ends: map[int32]int64{1: 7, 0: 42}, ids: map[string]bool{"a": true, "b": true}}
	j := &job{b: b, looked: look}
	h, ok := j.lookedHeader([]int{0, 1})
	if !ok || h.Key != headerStatusLooked || string(h.Value) != "st ab12 0:42,1:7" {
		t.Fatalf("header %q %q (%v), want st ab12 0:42,1:7", h.Key, h.Value, ok)
	}
	j.src = &kgo.Record{Headers: []kgo.RecordHeader{h}}
	if id, got := j.lookedBefore("st"); id != "ab12" || len(got) != 2 || got[0] != 42 || got[1] != 7 {
		t.Errorf("read back %s %v, want ab12 0:42 1:7", id, got)
	}
	if _, got := j.lookedBefore("other"); got != nil {
		t.Errorf("read back for another topic: %v, want none", got)
	}
	j.src.Headers = append(j.src.Headers, kgo.RecordHeader{Key: headerStatusLooked, Value: []byte("st ab12 0:99")})
	if _, got := j.lookedBefore("st"); got != nil {
		t.Errorf("read back of two headers: %v, want none", got)
	}
	for _, bad := range []string{"st", "st ", "st id", "st id ", "st id 0:x", "st id -1:4", "st id 0:-4", "st id 0", "st  0:4"} {
		j.src.Headers = []kgo.RecordHeader{{Key: headerStatusLooked, Value: []byte(bad)}}
		if _, got := j.lookedBefore("st"); got != nil {
			t.Errorf("read back of %q: %v, want none", bad, got)
		}
	}

	j.refusedOnTopic = map[string]refusal{"b": {}}
	if _, ok := j.lookedHeader([]int{0, 1}); ok {
		t.Error("a header on a copy holding a payee found refused on the topic")
	}
	if _, ok := j.lookedHeader([]int{0}); !ok {
		t.Error("no header on a copy holding only a payee looked for and not found")
	}
	j.refusedOnTopic = nil
	look.ids = map[string]bool{"a": true}
	if _, ok := j.lookedHeader([]int{0, 1}); ok {
		t.Error("a header on a copy holding a payee the look did not go for")
	}
	j.looked = nil
	if _, ok := j.lookedHeader([]int{0}); ok {
		t.Error("a header with no look")
	}
}

// A look that cannot reach the status topic's end within one attempt
// (here each try is cut after ten of the payee's records, as
// RefusalLookLimit cuts a read of days of a busy topic) fails its attempt,
// and the retry in place of the same record reads on from where it
// stopped instead of starting over: the look ends after a few tries, and
// the batch goes on (before, every try read the same ten records and the
// partition was held for good). A try that stopped short never posts.
// Here the payee has no REJECTED: it is paid once, after the look ended.
func TestStatusLookPastItsLimitResumesOnRetry(t *testing.T) {
	t.Parallel()
	eachSingleRailIndex(t, func(t *testing.T, i int) {
		f, r, b, src := lookedAcrossALoss(t, i, "look-resumes")
		rid := b.Transactions[0].RequestID
		payeeRecords(t, f, rid, 25, -1, nil)
		if tries := cutLooks(t, f, r, b, src, 10); tries != 3 {
			t.Errorf("the look ended after %d tries, want 3 (25 records, 10 a try)", tries)
		}
		if n := r.sim.Accepted(rid); n != 1 {
			t.Errorf("payee paid %d times, want 1", n)
		}
	})
}

// The REJECTED an attempt before the loss wrote for the payee lies past
// what one try reads (the 11th of 31 of the payee's records), exactly
// where the first try stopped: the second try reads from it, not past it,
// and finds it; the third and fourth read on, and the fourth, which
// reaches the end, still knows of it (a try's finds are kept with its
// progress): the payee is ended REJECTED again, never posted.
func TestStatusLookResumedStillFindsALateRejected(t *testing.T) {
	t.Parallel()
	eachSingleRailIndex(t, func(t *testing.T, i int) {
		f, r, b, src := lookedAcrossALoss(t, i, "look-resumes-rejected")
		rid := b.Transactions[0].RequestID
		payeeRecords(t, f, rid, 31, 10, &b)
		if tries := cutLooks(t, f, r, b, src, 10); tries != 4 {
			t.Errorf("the look ended after %d tries, want 4 (31 records, 10 a try)", tries)
		}
		if n := r.sim.Accepted(rid); n != 0 {
			t.Fatalf("payee REJECTED on the status topic, then paid %d times", n)
		}
		var rj []payout.StatusChange
		for _, rec := range f.kafka.ReadAll(t, f.topics.Status) {
			var sc payout.StatusChange
			if string(rec.Key) == rid && f.codec.DecodeStatusChange(rec.Value, &sc) == nil && sc.Status == payout.StatusRejected {
				rj = append(rj, sc)
			}
		}
		if len(rj) != 2 || rj[0].EventID != rj[1].EventID {
			t.Errorf("payee's REJECTED %v: want the same event again", rj)
		}
	})
}

// payeeRecords writes n records keyed rid to the status topic (the payee's
// other traffic, which the look reads through), the REJECTED a dispatcher
// writes for b's payee at position at (none when at < 0).
func payeeRecords(t *testing.T, f *fixture, rid string, n, at int, b *payout.Batch) {
	t.Helper()
	recs := make([]*kgo.Record, 0, n+1)
	for k := range n {
		if k == at {
			v, err := f.codec.AppendStatusChange(nil, dispatcherRejectedPayee(f, *b, 0))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Key: []byte(rid), Value: v})
			continue
		}
		recs = append(recs, &kgo.Record{Key: []byte(rid), Value: []byte("x")})
	}
	f.kafka.Produce(t, f.topics.Status, recs...)
}

// cutLooks runs b (read from src) as its worker does, retried in place on
// one engine, each try's look stopped after per of the payee's records as
// if RefusalLookLimit ran out there; it returns the tries the batch took.
// Every failed try must be its look's, and nothing paid before it ended.
func cutLooks(t *testing.T, f *fixture, r singleRail, b payout.Batch, src *kgo.Record, per int) int {
	t.Helper()
	e := r.engine(f, nil)
	reset := cutLooksAfter(e, per)
	for try := 1; try <= 10; try++ {
		reset()
		err := e.process(context.Background(), &b, src, testLogger())
		if err == nil {
			return try
		}
		if !strings.Contains(err.Error(), "TOPIC_STATUS") {
			t.Fatalf("try %d: %v, want the look's error", try, err)
		}
		if n := r.sim.Accepted(b.Transactions[0].RequestID); n != 0 {
			t.Fatalf("try %d: paid %d times on a look that stopped short", try, n)
		}
	}
	t.Fatal("the look never ended: each try started over")
	return 0
}

// The same for a Wompi batch's look on the batch status topic
// (rejectedOnTopic): each try is cut after ten of the batch's records,
// and the retry reads on; the batch's REJECTED, the 11th of 31, exactly
// where the first try stopped, is found and kept until the look ends:
// the batch is ended REJECTED again, never posted.
func TestBatchLookPastItsLimitResumesOnRetry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{ownRedis: true, noEpoch: true, partitions: 1})
	ctx := context.Background()
	first := simpleBatch("batch-look-first", 1)
	if err := f.engine(nil).process(ctx, &first, &kgo.Record{Topic: f.topics.Batches, Timestamp: time.Now()}, testLogger()); err != nil {
		t.Fatalf("first start: %v", err)
	}
	b := simpleBatch("batch-look-resumes", 1)
	src := &kgo.Record{Topic: f.topics.Batches, Key: []byte(b.BatchID), Timestamp: time.Now()}
	if err := f.redis.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := f.codec.AppendBatchStatusChange(nil, dispatcherRejected(f, b, "refused by an attempt before the loss"))
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, 31)
	for k := range recs {
		recs[k] = &kgo.Record{Key: []byte(b.BatchID), Value: []byte("x")}
	}
	recs[10].Value = v
	f.kafka.Produce(t, f.topics.BatchStatus, recs...)
	posts := len(f.tap.snapshot())

	e := f.engine(nil)
	reset := cutLooksAfter(e, 10)
	tries := 0
	for tries = 1; ; tries++ {
		if tries > 10 {
			t.Fatal("the look never ended: each try started over")
		}
		reset()
		err := e.process(ctx, &b, src, testLogger())
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "TOPIC_BATCH_STATUS") {
			t.Fatalf("try %d: %v, want the look's error", tries, err)
		}
	}
	if tries != 4 {
		t.Errorf("the look ended after %d tries, want 4 (31 records, 10 a try)", tries)
	}
	if n := len(f.tap.snapshot()) - posts; n != 0 {
		t.Errorf("%d POSTs of a batch REJECTED before the loss", n)
	}
	if n := outcome(e, "rejected"); n != 1 {
		t.Errorf("batch ended rejected %v times, want 1", n)
	}
}
