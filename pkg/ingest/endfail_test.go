package ingest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// Two faults: a window must abort (its second poll's claims fail) while
// the broker does not answer the produce of the batches it already sent. Ending
// the transaction then times out with those records still in flight, and
// their promises run only when the session's client closes. The engine
// waited for them right after End, before returning End's error, so it
// waited for ever: the session was closed only after runWindow returned.
// Now End's error is returned first; the closed client fails the records,
// the next session's first window waits for their promises, and the
// requests are batched once.
func TestEndThatTimesOutWithRecordsInFlightReturns(t *testing.T) {
	f := newFixture(t, 1, testenv.WithKFake()) // kfake holds the produce
	fake := f.kafka.Fake()
	reqs, valid, invalid := mixed(20, 0)
	f.produce(reqs)

	var holding atomic.Bool
	var held atomic.Int32
	holding.Store(true)
	fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		if !holding.Load() {
			return nil, nil, false
		}
		// Never answered: the connection closes, and franz-go, which
		// cannot know whether the broker wrote the records, sends them
		// again (held counts the attempts).
		held.Add(1)
		return nil, errors.New("test: the produce's connection closes unanswered"), true
	})

	e := f.engine("ingest-end-times-out", func(c *Config) {
		c.MaxTransactions = 5 // the first poll's batches close, and go out, at once
		c.MaxPollRecords = 10 // two polls in the window
		c.MaxWait, c.MaxWindow = time.Second, time.Second
		c.TransactionTimeout = 3 * time.Second // End's deadline
	})
	var claims atomic.Int32
	e.afterClaim = func() error {
		if claims.Add(1) == 2 {
			// The first poll's records are at the broker, unanswered.
			for wait := time.Now(); held.Load() == 0; time.Sleep(time.Millisecond) {
				if time.Since(wait) > 20*time.Second {
					t.Error("the first poll's records never reached the broker")
					break
				}
			}
			return errors.New("test: the second poll's claims are lost")
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "end transaction") {
			t.Fatalf("Run returned %v, want the end transaction's error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Run has not returned 30 s after its window's End timed out (%d produce requests held): it waits for promises only the session's close can run", held.Load())
	}
	if held.Load() == 0 {
		t.Fatal("no produce was held: the test tested nothing")
	}

	// The broker answers again; a new session (same engine, as the worker
	// runs it again) batches every request once.
	holding.Store(false)
	e.afterClaim = nil
	stop := f.run(e)
	o := f.read(len(reqs))
	stop()
	o.assertExactlyOnce(t, valid, invalid)
}
