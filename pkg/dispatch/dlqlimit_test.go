package dispatch

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
)

// Two faults on one record: a batch record the dispatcher cannot decode (a
// schema or framing mismatch during a rollout), and a dead-letter topic
// whose max.message.bytes is below it (sized, as the README asks, to the
// requests topic's, whose records are small; a batch is up to a megabyte).
// The DLQ produce was refused as too large on every try, retried for ever:
// the batch was never dead-lettered (no alert fired) and every batch behind
// it on its partition waited for good. Now a record the DLQ topic refuses
// as too large is dead-lettered without its value (then without the
// source's headers, then its key), the error header saying what was left
// out and the source-* headers naming the record, which stays in its topic.
func TestUndecodableBatchTooLargeForTheDLQDoesNotStall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, kfake: true})
	f.topics.RequestsDLQ = limitedTopic(t, f, f.topics.RequestsDLQ, 4096)
	e := f.engine(nil)
	// An unknown single-object fingerprint, then 20 KB of random bytes
	// (compression does not shrink them): undecodable for good, and above
	// the DLQ topic's limit.
	rng := rand.New(rand.NewPCG(1, 2))
	junk := []byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}
	for range 20 << 10 {
		junk = append(junk, byte(rng.Uint32()))
	}
	f.kafka.Produce(t, f.topics.Batches, &kgo.Record{Key: []byte("junk"), Value: junk})
	b := simpleBatch("afterbigjunk", 1)
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "the batch behind the undecodable one submitted", func() bool { return outcome(e, "submitted") == 1 })
	_ = stop()
	dlq := f.kafka.ReadAll(t, f.topics.RequestsDLQ)
	if len(dlq) != 1 || outcome(e, "dlq") != 1 {
		t.Fatalf("DLQ holds %d records (dlq outcome %d), want the undecodable one", len(dlq), outcome(e, "dlq"))
	}
	h := map[string]string{}
	for _, x := range dlq[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h[events.HeaderSourceTopic] != f.topics.Batches || h[events.HeaderSourceOffset] != "0" {
		t.Fatalf("the dead letter does not name its source: headers %v", h)
	}
	if !strings.Contains(h[events.HeaderError], "left out") {
		t.Fatalf("the error header does not say the value was left out: %q", h[events.HeaderError])
	}
	f.checkSubmitted(b)
}

// limitedTopic creates a topic named after name whose max.message.bytes is
// limit, and returns its name.
func limitedTopic(t *testing.T, f *fixture, name string, limit int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v := strconv.Itoa(limit)
	limited := name + "-limited"
	resp, err := f.kafka.Admin(t).CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &v}, limited)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", limited, err)
	}
	f.kafka.CreateTopic(t, limited, 1) // waits for its leader
	return limited
}
