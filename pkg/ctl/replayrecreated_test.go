package ctl

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
)

// Rule 4 (a request record whose replayed-from names the dead letter
// refuses it) named the dead letter by its DLQ position alone. Positions
// are not unique over the DLQ topic's life: deleted and re-created (purged),
// it counts from 0 again, and the request topic still holds the replays made
// from the old one. A new dead letter at the position an old one was
// replayed from was refused "already replayed" for good (while the request
// topic keeps that record) although its request was never replayed nor
// handled: lost. A replay record is keyed by its dead letter's requestId
// (replayRecord), so one keyed otherwise is not this dead letter's replay.
func TestReplayNamesItsDeadLetterByRequestIDToo(t *testing.T) {
	e := newDLQEnv(t)
	const id = "replay-recreated-new"
	at := e.deadLetter("not the id", e.value(piiRequest(id)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))

	// The replay of the old DLQ topic's dead letter at the same position:
	// another request, keyed by its requestId, replayed-from that position.
	const old = "replay-recreated-old"
	e.produce(&kgo.Record{Topic: e.topics.Requests, Key: []byte(old), Value: e.value(piiRequest(old)),
		Headers: []kgo.RecordHeader{{Key: HeaderReplayedFrom, Value: []byte(at)}}})

	got := e.replay("--offset", at)
	if it := got[at]; it.Verdict != VerdictReplayed {
		t.Fatalf("dead letter %s of %s (never replayed; an old DLQ's dead letter of %s was replayed from its position): %s %q, want replayed",
			at, id, old, it.Verdict, it.Reason)
	}
	// Replayed once, it is refused as such on a second run.
	again := e.replay("--offset", at)
	if it := again[at]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "already replayed") {
		t.Fatalf("second run: %s %q, want refused as already replayed", it.Verdict, it.Reason)
	}
}
