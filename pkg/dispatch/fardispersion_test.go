package dispatch

import (
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// A scheduled batch whose dispersion day is centuries ahead (a producer's
// typo ingest accepts: it is a later Bogota day) must not stall its
// partition. Its amount day's budget lived "the TTL plus the time until
// the end of the day", a time.Duration that overflowed past ~292 years:
// the seed and the reservation set a negative PEXPIRE, Redis deleted the
// day's hash at once, the reservation kept finding the day not seeded,
// and the batch was retried for ever while the immediate batch behind it
// on the same partition waited.
func TestFarDispersionDayDoesNotStallThePartition(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1, sim: wompitest.Config{PublishedOnly: true}})
	e := f.engine(nil)
	far := time.Date(2400, 3, 1, 9, 0, 0, 0, bogota)
	sched, now := simpleBatch("far", 1), simpleBatch("behind", 1)
	sched.Schedule.DispersionDatetime = &far
	f.produce(f.topics.Batches, sched, now)
	stop, _ := f.run(e)
	defer func() { _ = stop() }()
	eventually(t, "both batches submitted", func() bool { return outcome(e, "submitted") == 2 })
	f.noDoublePayment()
}
