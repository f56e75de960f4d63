package track

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// IsLeaseRenewal names the renewal calls, and only them.
func TestIsLeaseRenewal(t *testing.T) {
	pipe := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}).Pipeline()
	ctx := context.Background()
	for _, cmd := range []redis.Cmder{renewScript.EvalSha(ctx, pipe, []string{"k"}, 1), pipe.ScriptLoad(ctx, renewLua)} {
		if !IsLeaseRenewal(cmd) {
			t.Fatalf("%v: a renewal not recognised", cmd.Args()[:2])
		}
	}
	for _, cmd := range []redis.Cmder{beginScript.EvalSha(ctx, pipe, []string{"k"}, 1), pipe.ScriptLoad(ctx, "return 1"), pipe.Get(ctx, "k"), pipe.Ping(ctx)} {
		if IsLeaseRenewal(cmd) {
			t.Fatalf("%v taken for a renewal", cmd.Args())
		}
	}
}
