package dispatch

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A pair of faults: this process wrote its start record (offset 0) and
// has claimed nothing yet; the starts topic is then deleted and made
// again, and another dispatcher writes its record at offset 0 of the new
// log, claims under a first start of its own and has its first POST in
// flight when Redis is lost. This process's recovery must not take that
// record for its own: the new log's one record at offset 0 is another
// process's, which may have claimed against the lost Redis. Without the
// topic's id kept with the start record, the recovery skipped the grace.
func TestFirstStartNotMisjudgedAfterTheStartsTopicWasMadeAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true, ownRedis: true, noEpoch: true, partitions: 1})
	e := f.engine(nil)
	ctx := context.Background()
	if err := e.announce(ctx); err != nil {
		t.Fatal(err)
	}
	if first, why := e.firstStart(ctx); !first {
		t.Fatalf("before the topic was made again: not a first start (%s)", why)
	}
	if err := f.kafka.Fake().DeleteTopic(f.topics.DispatcherStarts); err != nil {
		t.Fatal(err)
	}
	f.kafka.CreateTopic(t, f.topics.DispatcherStarts, 1)
	f.kafka.Produce(t, f.topics.DispatcherStarts, &kgo.Record{Key: []byte("other/1"), Value: []byte(`{"instance":"other","boot":"1"}`)})
	if first, _ := e.firstStart(ctx); first {
		t.Fatal("a first start on a starts topic made again, whose one record at offset 0 is another process's")
	}
}
