package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SeenBy reads ingest's seen index (read-only, for operators:
// cmd/payoutsctl): the requests record that holds requestID, as
// "<partition>:<offset>" of the requests topic. found is false when no
// record holds it (never read, expired after DEDUPE_WINDOW, or lost with
// Redis).
func SeenBy(ctx context.Context, rdb redis.UniversalClient, prefix, requestID string) (holder string, found bool, err error) {
	s := &seenIndex{prefix: prefix}
	holder, err = rdb.Get(ctx, s.key(requestID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("ingest: read seen index: %w", err)
	}
	// The value also names the record's timestamp (see seenIndex): shown
	// as the position alone, as claims of earlier releases are.
	if i := strings.IndexByte(holder, ':'); i >= 0 {
		if j := strings.IndexByte(holder[i+1:], ':'); j >= 0 {
			holder = holder[:i+1+j]
		}
	}
	return holder, true, nil
}
