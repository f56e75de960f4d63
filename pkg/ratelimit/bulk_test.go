package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// One reservation spaces its tokens by the emission interval after the
// burst; the next reservation queues behind it, even from another client
// (another replica): the shared rate holds whatever the reservation sizes.
func TestBulkReserveSchedulesTokens(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	const rate, burst = 100.0, 3 // 10 ms apart, 3 at once
	a, err := NewBulk(rs.Client(), rs.Prefix()+"bulk-test", rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBulk(rs.NewClient(t), rs.Prefix()+"bulk-test", rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := a.Reserve(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	w1 := p1.Waits()
	iv := 10 * time.Millisecond
	for i := range burst {
		if w1[i] > iv { // within the burst: (nearly) at once
			t.Fatalf("token %d of a fresh bucket waits %v, want none (burst %d)", i, w1[i], burst)
		}
	}
	for i := burst; i < len(w1); i++ {
		if d := w1[i] - w1[i-1]; d != iv && w1[i-1] != 0 {
			t.Fatalf("tokens %d and %d are %v apart, want %v", i-1, i, d, iv)
		}
	}
	p2, err := b.Reserve(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	w2 := p2.Waits()
	// p2's waits are measured from a later instant: its first token comes
	// one interval after p1's last, less the time between the two calls.
	if w2[0] < w1[len(w1)-1]+iv-time.Second || w2[0] > w1[len(w1)-1]+iv {
		t.Fatalf("second reservation's first wait %v, want about %v (after the first's last)", w2[0], w1[len(w1)-1]+iv)
	}

	// The pacer hands each token out once, in order, then says it is empty.
	var mu sync.Mutex
	got := 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := p2.Wait(ctx)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 4 {
		t.Fatalf("%d tokens handed out of a reservation of 4", got)
	}
	if _, err := a.Reserve(ctx, 0); err == nil {
		t.Fatal("a reservation of 0 tokens was accepted")
	}
}
