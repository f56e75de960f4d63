package dispatch

import (
	"context"
	"testing"
	"time"
)

// The recovery lock (takeRecoveryLock): one owner at a time, kept past its
// TTL while held, given up on release, released by its own owner only, and
// lost (the channel closed) when taken from its holder. A recovery and a
// completion of the epoch take it as different owners.
func TestRecoveryLockIsHeldRenewedAndReleased(t *testing.T) {
	// Not t.Parallel: the lock lives 300 ms and is renewed every 100 ms by a
	// goroutine; a stall of 200 ms under the other tests' load lets it
	// expire during the 1 s sleep (holder "", or lost closed).
	f := newFixture(t, fixtureOpt{ownRedis: true})
	e := f.engine(nil)
	e.st.lockTTLms = 300 // renewed every 100 ms
	ctx := context.Background()
	rdb := f.redis.Client()
	holder := func() string {
		t.Helper()
		v, err := rdb.Get(ctx, e.st.lockKey()).Result()
		if err != nil && err.Error() != "redis: nil" {
			t.Fatal(err)
		}
		return v
	}

	lockA, ok, err := e.takeRecoveryLock(ctx, "a")
	if err != nil || !ok {
		t.Fatalf("a free lock not taken: %v", err)
	}
	if _, ok, err := e.takeRecoveryLock(ctx, "a/complete"); err != nil || ok {
		t.Fatalf("a held lock taken by another owner (%v)", err)
	}
	time.Sleep(time.Second) // more than three TTLs
	if h := holder(); h != "a" {
		t.Fatalf("the lock is held by %q after its TTL, want a (renewed)", h)
	}
	select {
	case <-lockA.lost:
		t.Fatal("a held lock reported lost")
	default:
	}
	lockA.release()
	if h := holder(); h != "" {
		t.Fatalf("the lock is held by %q after its release", h)
	}

	lockB, ok, err := e.takeRecoveryLock(ctx, "a/complete")
	if err != nil || !ok {
		t.Fatalf("a released lock not taken: %v", err)
	}
	// Taken from b (its TTL ran out while b was cut off, and c took it).
	if err := rdb.Set(ctx, e.st.lockKey(), "c", 0).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lockB.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a lock taken from its holder was not reported lost")
	}
	lockB.release()
	if h := holder(); h != "c" {
		t.Fatalf("the lock is held by %q after b released it, want c's kept", h)
	}
}
