package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// arenaEngine is an Engine with what the status records need: a codec and
// the topics.
func arenaEngine(tb testing.TB) *Engine {
	c, err := events.NewCodec(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return &Engine{cfg: Config{Codec: c, Topics: events.DefaultTopics(), Now: time.Now}}
}

// batchEvents builds a batch's SUBMITTED and PENDING records as the
// Wompi finish does, from a (nil: each record apart).
func batchEvents(tb testing.TB, e *Engine, a *recordArena, at time.Time, b *payout.Batch) []*kgo.Record {
	payoutID := "payout-1"
	var out []*kgo.Record
	for i := range b.Transactions {
		t := &b.Transactions[i]
		txID := fmt.Sprintf("trx-%d", i)
		r, err := e.statusRecordIn(a, at, b, t, payout.StatusSubmitted, "", "", &payoutID, &txID,
			payout.EventID("status", t.RequestID, string(payout.StatusSubmitted), b.BatchID))
		if err != nil {
			tb.Fatal(err)
		}
		p, err := e.pendingRecord(a, at, b, t, &payoutID, &txID)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, r, p)
	}
	return out
}

// TestArenaRecordsMatchApartOnes holds the batch arena to the records
// built one by one: same topic, key and value bytes for every event, the
// timestamp set to occurredAt, and no record's bytes overwritten by a
// later one's (the buffer grows past its first array on the way: its
// size guess is halved here).
func TestArenaRecordsMatchApartOnes(t *testing.T) {
	t.Parallel()
	e := arenaEngine(t)
	b := simpleBatch("arena", 300)
	for i := range b.Transactions {
		b.Transactions[i].RequestID = fmt.Sprintf("arena-req-%d-%s", i, bytes.Repeat([]byte("x"), i%40))
	}
	at := time.UnixMilli(1_700_000_000_123)
	apart := batchEvents(t, e, nil, at, &b)
	a := &recordArena{recs: make([]kgo.Record, 0, len(apart)/2), buf: make([]byte, 0, len(apart)*arenaRecordBytes/4)}
	in := batchEvents(t, e, a, at, &b)
	if len(in) != len(apart) {
		t.Fatalf("%d records, want %d", len(in), len(apart))
	}
	for i := range in {
		if in[i].Topic != apart[i].Topic || !bytes.Equal(in[i].Key, apart[i].Key) || !bytes.Equal(in[i].Value, apart[i].Value) {
			t.Fatalf("record %d differs: key %q value %x, want key %q value %x", i, in[i].Key, in[i].Value, apart[i].Key, apart[i].Value)
		}
		if !in[i].Timestamp.Equal(at) {
			t.Fatalf("record %d: timestamp %v, want occurredAt %v", i, in[i].Timestamp, at)
		}
		if cap(in[i].Value) != len(in[i].Value) || cap(in[i].Key) != len(in[i].Key) {
			t.Fatalf("record %d: key or value may be appended over (cap beyond len)", i)
		}
		var sc payout.StatusChange
		if err := e.cfg.Codec.DecodeStatusChange(in[i].Value, &sc); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if string(in[i].Key) != sc.RequestID {
			t.Fatalf("record %d: key %q, event of %q", i, in[i].Key, sc.RequestID)
		}
	}
}

// BenchmarkBatchEvents measures building a 2,000-request batch's
// SUBMITTED and PENDING records, from one arena or each apart.
func BenchmarkBatchEvents(b *testing.B) {
	e := arenaEngine(b)
	batch := simpleBatch("bench", 2000)
	at := time.Now()
	for _, arena := range []bool{false, true} {
		b.Run(fmt.Sprintf("arena=%v", arena), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var a *recordArena
				if arena {
					a = newRecordArena(2 * len(batch.Transactions))
				}
				batchEvents(b, e, a, at, &batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch.Transactions)), "ns/request")
		})
	}
}

// freeArenas is how many record arenas e keeps for the next batches.
func freeArenas(e *Engine) int {
	e.arenasMu.Lock()
	defer e.arenasMu.Unlock()
	return len(e.arenas)
}

// A batch's record arena is kept for the next batch only once every record
// given to the producer finished: after a batch submitted, but not after a
// produce that failed, whose records the producer may still hold (a closed
// client's; the next batch would write over them).
func TestBatchArenaKeptOnlyAfterItsRecordsFinished(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	var produces atomic.Int32
	e.betweenProduces = func() {
		if produces.Add(1) == 2 {
			// The second batch: shut down hard between its produces.
			e.killHard(errors.New("test: shutdown between the produces"))
		}
	}
	f.produce(f.topics.Batches, simpleBatch("arena-a", 40))
	stop, _ := f.run(e)
	eventually(t, "the first batch submitted", func() bool { return outcome(e, "submitted") == 1 })
	if n := freeArenas(e); n != 1 {
		t.Fatalf("%d arenas kept after a batch submitted, want its one", n)
	}
	f.produce(f.topics.Batches, simpleBatch("arena-b", 40))
	eventually(t, "the second batch's produces", func() bool { return produces.Load() == 2 })
	_ = stop()
	if n := outcome(e, "submitted"); n != 1 {
		t.Fatalf("%d batches submitted, want the first only", n)
	}
	if n := freeArenas(e); n != 0 {
		t.Fatalf("%d arenas kept after a failed produce, want none (the second batch took the first's)", n)
	}
}
