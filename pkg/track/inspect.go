package track

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// KnownStatus is what the tracker's Redis holds about one request or batch
// (a read-only view for operators; cmd/payoutsctl).
type KnownStatus struct {
	// Confirmed is the last status whose event was produced ("" when
	// unknown: never seen, expired, or lost with Redis).
	Confirmed string
	// InFlight is a status an attempt is emitting now, or abandoned before
	// its produce was confirmed ("" when none).
	InFlight string
}

// ReadStatus reads the tracker's last-known status of a request (batch
// false: id is a requestId) or of a batch (batch true: id is a batchId). It
// writes nothing.
func ReadStatus(ctx context.Context, rdb redis.UniversalClient, prefix string, batch bool, id string) (KnownStatus, error) {
	s := &statusStore{prefix: prefix}
	k := kindRequest
	if batch {
		k = kindBatch
	}
	v, err := readStatusKey(ctx, rdb, s.key(k, id))
	if err != nil {
		return KnownStatus{}, fmt.Errorf("track: read status: %w", err)
	}
	ks := KnownStatus{Confirmed: v.st, InFlight: v.fl}
	return ks, nil
}
