package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// A record read again finds its own claim (SET NX GET), and the claim runs
// out before the renewal's round trip, in which another record (a copy,
// read by another instance meanwhile) claims the requestId: the renewal
// answers that record's claim, so this record is the copy now. Let
// through, it is batched while the other record, which holds the claim,
// is batched too: one request paid twice. The renewal leaves that record's
// claim alone (renewClaimScript extends only its own record's).
func TestSeenClaimTakenBeforeTheRenewalIsACopy(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	probe := &seenIndex{rdb: rs.Client(), prefix: rs.Prefix(), ttl: time.Hour}
	const id, own, other = "renew-race-1", "0:5", "1:9"
	key := probe.key(id)
	// The renewal's pipeline runs after the claim ran out and the other
	// record claimed the requestId.
	cl := redis.NewClient(&redis.Options{Addr: rs.Client().Options().Addr, DB: rs.Client().Options().DB})
	t.Cleanup(func() { _ = cl.Close() })
	cl.AddHook(beforeRenewal{run: func() {
		if err := rs.Client().Set(ctx, key, other, time.Minute).Err(); err != nil {
			t.Error(err)
		}
	}})
	idx := &seenIndex{rdb: cl, prefix: rs.Prefix(), ttl: time.Hour}
	if err := rs.Client().Set(ctx, key, own, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	copies := make([]bool, 1)
	if err := idx.claim(ctx, []string{id}, []string{own}, copies); err != nil {
		t.Fatal(err)
	}
	if !copies[0] {
		t.Error("the record let through although another record holds its requestId since the renewal")
	}
	if got := rs.Client().Get(ctx, key).Val(); got != other {
		t.Errorf("the claim holds %q, want the other record's %q", got, other)
	}
	// The renewal leaves the other record's claim as that record set it.
	if ttl := rs.Client().PTTL(ctx, key).Val(); ttl > time.Minute {
		t.Errorf("the other record's claim has TTL %v after this record's renewal, want it left as it was", ttl)
	}
}

// beforeRenewal runs run before a pipeline that holds renewClaimScript.
type beforeRenewal struct{ run func() }

func (h beforeRenewal) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h beforeRenewal) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h beforeRenewal) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if a := c.Args(); c.Name() == "eval" && len(a) > 1 && a[1] == renewClaimScript {
				h.run()
				break
			}
		}
		return next(ctx, cmds)
	}
}
