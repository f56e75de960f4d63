package dispatch

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// The neighbouring path of TestUndecodableBatchTooLargeForTheDLQDoesNotStall:
// a batch that decodes but fails for good (its budget refuses it as
// invalid: a zero amount) is dead-lettered whole by endPoisoned, and a
// batch record is up to a megabyte while the DLQ topic is sized to the
// requests topic's. The DLQ produce was refused as too large on every try:
// the batch was retried for ever, its partition held, the batches behind
// it never paid, and its REJECTED events produced again at every retry.
func TestPoisonedBatchTooLargeForTheDLQDoesNotStall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, kfake: true})
	f.topics.RequestsDLQ = limitedTopic(t, f, f.topics.RequestsDLQ, 4096)
	e := f.engine(nil)
	amounts := map[string]int64{}
	var order []string
	for i := range 60 {
		rid := fmt.Sprintf("bigpoison-%d", i)
		amounts[rid] = 0 // the budget refuses the batch as invalid
		order = append(order, rid)
	}
	bad := batch("bigpoison", amounts, order...)
	// Names that do not compress: the record stays above the limit.
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range bad.Transactions {
		name := []byte("Payee ")
		for range 90 {
			name = append(name, byte('a'+rng.IntN(26)))
		}
		bad.Transactions[i].Beneficiary.Name = string(name)
	}
	v, err := f.codec.AppendBatch(nil, &bad)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) <= 4096 {
		t.Fatalf("setup: the batch record is %d bytes, not above the DLQ topic's limit", len(v))
	}
	good := simpleBatch("afterbigpoison", 1)
	f.produce(f.topics.Batches, bad, good)
	stop, _ := f.run(e)
	eventually(t, "the batch behind the poisoned one submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	if outcome(e, "failed") != 1 {
		t.Fatalf("failed outcome %d, want the poisoned batch ended once", outcome(e, "failed"))
	}
	var dead []string
	for _, rec := range f.kafka.ReadAll(t, f.topics.RequestsDLQ) {
		if string(rec.Key) == bad.BatchID || len(rec.Key) == 0 {
			for _, h := range rec.Headers {
				if h.Key == events.HeaderError {
					dead = append(dead, string(h.Value))
				}
			}
		}
	}
	if len(dead) != 1 || !strings.Contains(dead[0], "left out") {
		t.Fatalf("dead letters of the poisoned batch: %q, want one saying what was left out", dead)
	}
	idx := byStatus(f.statuses())
	for _, rid := range order {
		if r := idx[rid][payout.StatusRejected]; len(r) != 1 {
			t.Fatalf("request %s: %d REJECTED, want 1", rid, len(r))
		}
	}
	f.checkSubmitted(good)
}
