package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Rule 3 (any event of the requestId on the status topic refuses the
// replay) read the status topic read_committed up to its last stable
// offset. The status topic is written in transactions by several
// producers (each ingest replica's window is one transaction of up to
// BATCH_MAX_WINDOW, the dispatchers'), so an event committed after another
// producer's transaction began on that partition sits above the last
// stable offset until that other transaction ends, while the dead letter
// written beside it (another topic, the same transaction) is readable.
//
// Sequence: ingest replica A's window is open on the status partition of
// R (it wrote some other request's event there). Replica B reads R, keyed
// R, in a schema the registry does not know yet: in one committed
// transaction it writes R's dead letter (SCHEMA_NOT_FOUND) and R's final
// REJECTED. The schema is registered and the operator replays the
// SCHEMA_NOT_FOUND dead letters at once: R's REJECTED is above the last
// stable offset, the dead letter's own original is no re-send (rule 5), and
// R is republished although the marketplace was told it was REJECTED (and
// may have sent it again under a new requestId, as docs/operations.md
// says). Only ingest's seen index stands between R and a payment after its
// final REJECTED; a Redis loss meanwhile pays it (twice, with the
// marketplace's new requestId).
func TestReplayWaitsForTransactionsOpenOnTheStatusTopic(t *testing.T) {
	e := newDLQEnv(t)
	const id = "replay-open-txn-rejected"
	p := partitionOf(e.topics.Status, []byte(id), 3) // newDLQEnv's status topic

	// Replica A: a transaction left open on R's status partition.
	a := e.k.Client(t, kgo.TransactionalID("replay-open-txn-ingest-a"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(time.Minute))
	ctx := context.Background()
	if err := a.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	other := statusRecord(t, e.codec, e.topics.Status, "replay-open-txn-other", payout.StatusBatched, time.Now())
	other.Partition = p
	if err := a.ProduceSync(ctx, other).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Replica B: R's dead letter and its REJECTED, committed together.
	b := e.k.Client(t, kgo.TransactionalID("replay-open-txn-ingest-b"))
	if err := b.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	src := &kgo.Record{Topic: e.topics.Requests, Key: []byte(id), Value: e.value(piiRequest(id))}
	e.produce(src)
	dl := events.DLQRecord(src, e.topics.RequestsDLQ, fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	rej := statusRecord(t, e.codec, e.topics.Status, id, payout.StatusRejected, time.Now())
	res := b.ProduceSync(ctx, dl)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	dlAt := res[0].Record
	at := position(dlAt.Partition, dlAt.Offset)
	if res = b.ProduceSync(ctx, rej); res.FirstErr() != nil || res[0].Record.Partition != p {
		t.Fatalf("REJECTED: %v, in partition %d, want %d", res.FirstErr(), res[0].Record.Partition, p)
	}
	if err := b.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// Apache Kafka writes a commit's markers after EndTransaction answers:
	// until the DLQ partition's has landed, the dead letter is above its
	// last stable offset, where the replay (and an operator) cannot see it
	// yet. The test is of what the replay does once it is visible.
	readable(t, e, e.topics.RequestsDLQ, dlAt.Partition, dlAt.Offset)

	// A's window ends a little later (or the broker aborts it): only once
	// the replay has answered, or when the replay waits for it.
	done := make(chan map[string]ReplayItem, 1)
	go func() { done <- e.replayNoFatal("--offset", at) }()
	var got map[string]ReplayItem
	select {
	case got = <-done:
	case <-time.After(3 * time.Second):
	}
	if err := a.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if got == nil {
		got = <-done
	}
	if got == nil {
		t.Fatal("dlq replay failed")
	}
	if it := got[at]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "event(s) on "+e.topics.Status) {
		t.Errorf("dead letter %s of %s, whose REJECTED was committed with it: %s %q, want refused for its event", at, id, it.Verdict, it.Reason)
	}
	if n := len(e.replayed()); n != 0 {
		t.Errorf("%d records of %s republished after its REJECTED", n, id)
	}
}

// replayNoFatal is replay for a goroutine: nil when the run failed.
func (e *dlqEnv) replayNoFatal(args ...string) map[string]ReplayItem {
	out, errs, code := e.run(append([]string{"dlq", "replay", "--output", "json"}, args...)...)
	if code != 0 {
		e.t.Logf("dlq replay: exit %d: %s", code, errs)
		return nil
	}
	var r ReplayResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Logf("dlq replay output: %v", err)
		return nil
	}
	m := map[string]ReplayItem{}
	for _, it := range r.Items {
		m[position(it.Partition, it.Offset)] = it
	}
	return m
}

// A transaction that stays open on the status topic past the command's
// time (a hung producer, or a long ingest window) makes the replay fail,
// replaying nothing, with an error that says what it waited for and what
// to do: not a bare "context deadline exceeded".
func TestReplayOutlastedByAnOpenTransactionSaysWhy(t *testing.T) {
	e := newDLQEnv(t)
	const id = "replay-open-txn-timeout"
	p := partitionOf(e.topics.Status, []byte(id), 3) // newDLQEnv's status topic
	a := e.k.Client(t, kgo.TransactionalID("replay-open-txn-hung"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(time.Minute))
	ctx := context.Background()
	if err := a.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	other := statusRecord(t, e.codec, e.topics.Status, "replay-open-txn-hung-other", payout.StatusBatched, time.Now())
	other.Partition = p
	if err := a.ProduceSync(ctx, other).FirstErr(); err != nil {
		t.Fatal(err)
	}
	defer a.EndTransaction(ctx, kgo.TryAbort)
	src := &kgo.Record{Topic: e.topics.Requests, Key: []byte(id), Value: e.value(piiRequest(id))}
	e.produce(src)
	dl := events.DLQRecord(src, e.topics.RequestsDLQ, fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	at := e.produce(dl)

	_, errs, code := e.run("dlq", "replay", "--timeout", "2s", "--offset", at)
	if code == 0 {
		t.Fatal("dlq replay answered while a transaction was open on the status topic")
	}
	for _, want := range []string{"transaction open on " + e.topics.Status, "--timeout"} {
		if !strings.Contains(errs, want) {
			t.Errorf("dlq replay's error %q does not say %q", errs, want)
		}
	}
	if n := len(e.replayed()); n != 0 {
		t.Errorf("%d records republished by a replay that failed", n)
	}
}

// readable waits until the record at partition p, offset o of topic is
// readable read_committed (its transaction's marker has landed).
func readable(t *testing.T, e *dlqEnv, topic string, p int32, o int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, r := range e.k.ReadAll(t, topic) {
			if r.Partition == p && r.Offset == o {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %d/%d not readable read_committed after 30 s", topic, p, o)
		}
	}
}
