package payout

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// EventIDLen is the length of every eventId: 32 hex characters.
const EventIDLen = 32

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
	var id [EventIDLen]byte
	eventID(&id, parts)
	return string(id[:])
}

// eventID writes EventID(parts...) to id.
func eventID(id *[EventIDLen]byte, parts []string) {
	var buf [256]byte
	b := buf[:0]
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0x1f)
		}
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	hex.Encode(id[:], sum[:EventIDLen/2])
}

// eventIDChunk is how many eventIds an EventIDArena's chunk holds.
const eventIDChunk = 64

// EventIDArena hands out eventIds (the same strings as EventID) carved from
// shared chunks of eventIDChunk ids: one heap allocation per chunk instead of
// one per id, for the workers' hot paths that derive one or two ids per
// request. A chunk is a strings.Builder's buffer, which is only ever
// appended to and never written over, so an id handed out stays valid (and
// keeps its chunk alive) for as long as it is referenced. The zero value is
// ready to use; an arena is not safe for concurrent use.
type EventIDArena struct {
	b strings.Builder
}

// EventID returns EventID(parts...).
func (a *EventIDArena) EventID(parts ...string) string {
	if a.b.Cap()-a.b.Len() < EventIDLen {
		a.b = strings.Builder{}
		a.b.Grow(eventIDChunk * EventIDLen)
	}
	var id [EventIDLen]byte
	eventID(&id, parts)
	a.b.Write(id[:])
	s := a.b.String()
	return s[len(s)-EventIDLen:]
}
