package events

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// laggingValue registers a newer PayoutRequested (one optional field
// more) under the requests subject of srv, and returns a Confluent-framed
// value written with it: an id the codec learns only from the registry.
func laggingValue(t *testing.T, c *Codec, srv *registrytest.Server, r *payout.Request) []byte {
	t.Helper()
	js := Schema(RecordRequest)
	i := strings.LastIndex(js, "]")
	newer := js[:i] + `,{"name":"laggingNote","type":["null","string"],"default":null}` + js[i:]
	id, err := srv.Register(DefaultTopics().Requests+"-value", newer)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := c.AppendRequest(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	v := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	v = append(v, cur[confluentHdrLen:]...)
	return append(v, 0) // laggingNote: null
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Issue 15 item 4: a registry follower that answers 404 for a schema id it
// has not caught up with must not dead-letter valid requests. The id is
// retried (a transient error) until SCHEMA_REGISTRY_NOT_FOUND_RETRY has
// passed since the first 404, and only then is it unknown (permanent).
func TestSchemaNotFoundIsRetriedForABoundedTime(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	c, srv := newRegistryCodec(t, WithNotFoundRetry(time.Minute), WithClock(clock.now))
	want := fullRequest()
	v := laggingValue(t, c, srv, want)

	// A follower behind by three lookups: three transient errors, then the
	// request decodes.
	srv.LagIDs(3)
	var got payout.Request
	for i := 0; i < 3; i++ {
		err := c.DecodeRequest(v, &got)
		if !errors.Is(err, ErrSchemaNotYetFound) || Permanent(err) {
			t.Fatalf("lookup %d: err = %v, want a transient ErrSchemaNotYetFound", i, err)
		}
		clock.add(10 * time.Second)
	}
	if err := c.DecodeRequest(v, &got); err != nil {
		t.Fatalf("after the follower caught up: %v", err)
	}
	if got.RequestID != want.RequestID || got.AmountInCents != want.AmountInCents {
		t.Fatalf("decoded %+v", got)
	}

	// An id the registry never learns: transient for the bound, then
	// ErrUnknownSchema, which is permanent (the DLQ).
	c2, srv2 := newRegistryCodec(t, WithNotFoundRetry(time.Minute), WithClock(clock.now))
	v2 := laggingValue(t, c2, srv2, want)
	srv2.LagIDs(-1)
	for _, step := range []time.Duration{0, 30 * time.Second, 29 * time.Second} {
		clock.add(step)
		if err := c2.DecodeRequest(v2, &got); !errors.Is(err, ErrSchemaNotYetFound) || Permanent(err) {
			t.Fatalf("within the bound: err = %v", err)
		}
	}
	clock.add(2 * time.Second)
	err := c2.DecodeRequest(v2, &got)
	if !errors.Is(err, ErrUnknownSchema) || !Permanent(err) {
		t.Fatalf("past the bound: err = %v, want a permanent ErrUnknownSchema", err)
	}
	if n := srv2.Calls("GET /schemas/ids/{id}"); n != 4 {
		t.Errorf("%d fetches of the id, want one per decode (4)", n)
	}
	// Within ten minutes of the last 404 the id stays unknown, whatever the
	// backoff between reads; a quiet spell longer than that starts a new
	// bound.
	clock.add(5 * time.Minute)
	if err := c2.DecodeRequest(v2, &got); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("5 min after the last 404: err = %v, want ErrUnknownSchema", err)
	}
	clock.add(11 * time.Minute)
	if err := c2.DecodeRequest(v2, &got); !errors.Is(err, ErrSchemaNotYetFound) {
		t.Fatalf("after a quiet spell: err = %v, want a new retry bound", err)
	}

}
