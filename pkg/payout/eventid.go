package payout

import (
	"crypto/sha256"
	"encoding/hex"
)

// EventID derives a deterministic event id from its parts: the first 32 hex
// characters of SHA-256 over the parts joined by a 0x1f separator. The same
// transition always gets the same id, whichever worker or replica emits it
// and whether or not Redis remembers it, so consumers can dedupe on it.
//
// Conventions: a request's status event is EventID("status", requestId,
// status, discriminator...) where the discriminator is the Wompi
// transaction id once there is one (so a re-sent transaction's transitions
// are distinct), the batch id before that, and the deferral attempt for
// DEFERRED.
func EventID(parts ...string) string {
	var buf [256]byte
	b := buf[:0]
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
