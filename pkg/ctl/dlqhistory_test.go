package ctl

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// trimStatus deletes every record of the status topic, as retention does.
func (e *dlqEnv) trimStatus() {
	e.t.Helper()
	adm := kadm.NewClient(e.cl)
	ends, err := adm.ListEndOffsets(context.Background(), e.topics.Status)
	if err != nil {
		e.t.Fatal(err)
	}
	del := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { del.AddOffset(o.Topic, o.Partition, o.Offset, -1) })
	if _, err := adm.DeleteRecords(context.Background(), del); err != nil {
		e.t.Fatal(err)
	}
}

// A request R was paid; a copy of it, keyed R, arrived in bytes ingest
// could not decode then (a schema it did not know yet) and was
// dead-lettered with its decode error, as ingest wrote such copies before
// it marked them DUPLICATE_REQUEST. Weeks later retention has removed R's
// events from the status topic, while the dead letter is still kept. No
// event of R proves nothing then: the replay is refused, since ingest
// (its seen index expired) would batch R again and the rail pay it twice.
func TestReplayRefusedOnceStatusHistoryIsTrimmed(t *testing.T) {
	e := newDLQEnv(t)
	const id = "paid-then-copied"
	for _, st := range []payout.Status{payout.StatusBatched, payout.StatusSubmitted, payout.StatusApproved} {
		e.produce(statusRecord(t, e.codec, e.topics.Status, id, st, time.Now().Add(-29*24*time.Hour)))
	}
	at := e.deadLetter(id, e.value(piiRequest(id)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	if it := e.replay("--offset", at, "--dry-run")[at]; it.Verdict != VerdictRefused {
		t.Fatalf("while R's events are on the status topic: %+v, want refused", it)
	}
	e.trimStatus()
	it := e.replay("--error", CodeSchemaNotFound)[at]
	if it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "retention") {
		t.Fatalf("a copy of a paid request whose status history aged out: %s %q", it.Verdict, it.Reason)
	}
	if n := len(e.replayed()); n != 0 {
		t.Fatalf("%d records replayed", n)
	}
}

// The same rule does not refuse a dead letter whose partition of the status
// topic was trimmed long enough ago: its oldest record kept is older than
// DEDUPE_WINDOW before the dead letter, so the history covers every
// original ingest could have taken it for a copy of.
func TestReplayAllowedWhenTrimmedHistoryStillCovers(t *testing.T) {
	e := newDLQEnv(t)
	const id = "never-handled"
	n := 3 // the status topic's partitions (newDLQEnv)
	p := partitionOf(e.topics.Status, []byte(id), n)
	filler := ""
	for i := 0; filler == ""; i++ {
		if k := fmt.Sprintf("filler-%d", i); partitionOf(e.topics.Status, []byte(k), n) == p {
			filler = k
		}
	}
	e.produce(statusRecord(t, e.codec, e.topics.Status, filler, payout.StatusBatched, time.Now()))
	e.trimStatus()
	old := statusRecord(t, e.codec, e.topics.Status, filler, payout.StatusApproved, time.Now())
	old.Timestamp = time.Now().Add(-40 * 24 * time.Hour)
	e.produce(old)
	at := e.deadLetter(id, e.value(piiRequest(id)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	if it := e.replay("--offset", at)[at]; it.Verdict != VerdictReplayed {
		t.Fatalf("a dead letter whose trimmed status partition still reaches 40 days back: %s %q, want replayed", it.Verdict, it.Reason)
	}
	var got []*kgo.Record = e.replayed()
	if len(got) != 1 || string(got[0].Key) != id {
		t.Fatalf("replayed %d records", len(got))
	}
}
