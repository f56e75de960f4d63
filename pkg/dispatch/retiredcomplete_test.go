package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// completeEpoch, like the recovery, completes no epoch while a live
// dispatcher pays through a rail retired here (DISPATCHER_RETIRED_RAILS),
// which its relisting cannot list: that dispatcher would post a copy of a
// request it paid before the loss without a lookup, on the rail itself.
// A rail named only by a record older than railsEvery and an hour (a
// dispatcher gone since) no longer holds the epoch back.
func TestCompleteEpochWaitsForALiveDispatcherOnARetiredRail(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	f := newFixture(t, fixtureOpt{ownRedis: true})
	e := f.engine(func(c *Config) { c.RetiredRails = []rail.Name{r.name} })
	ctx := context.Background()
	incomplete := func() {
		t.Helper()
		if err := f.redis.Client().HDel(ctx, e.st.epochKey(), "complete").Err(); err != nil {
			t.Fatal(err)
		}
		e.completeAfter.Store(0) // the wait after a refusal
	}

	f.putStart(startRecord{Instance: "gone", StartedAt: time.Now().Add(-e.railsEvery - 2*time.Hour),
		Rails: []rail.Name{rail.Wompi, r.name}})
	incomplete()
	e.completeEpoch(ctx, "e0")
	if c := f.epochField("complete"); c != "e0" {
		t.Fatalf("complete %q with %s named only by a dispatcher gone for a day, want e0", c, r.name)
	}

	f.putStart(startRecord{Instance: "still-paying", StartedAt: time.Now(), Rails: []rail.Name{rail.Wompi, r.name}})
	incomplete()
	e.completeEpoch(ctx, "e0")
	if c := f.epochField("complete"); c != "" {
		t.Fatalf("complete %q although a live dispatcher pays through %s, retired here and not listed: its copies would be proven new", c, r.name)
	}
}
