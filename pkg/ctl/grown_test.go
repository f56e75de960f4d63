package ctl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// growTopic adds partitions to topic until it has n, and waits until they
// are listed.
func growTopic(t *testing.T, cl *kgo.Client, topic string, n int) {
	t.Helper()
	adm := kadm.NewClient(cl)
	resp, err := adm.UpdatePartitions(context.Background(), n, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := partitions(context.Background(), adm, topic)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still has %d partitions (%v)", topic, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// movedKey returns a requestId whose partition differs between a topic of
// before and of after partitions.
func movedKey(topic string, before, after int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("paid-before-growth-%d", i)
		if partitionOf(topic, []byte(k), before) != partitionOf(topic, []byte(k), after) {
			return k
		}
	}
}

// dlq replay's rule 3 ("its requestId has any event on the status topic")
// read only the partition the requestId hashes to under the status topic's
// partition count now. Once partitions are added to payouts.status.v1, the
// events of every request produced before lie in the partition of the old
// count, and the check read another one.
//
// Sequence: R was batched, submitted and approved (events on the status
// topic, 3 partitions). A copy of R under a wrong key, in bytes ingest could
// not decode then, sits in the DLQ (SCHEMA_NOT_FOUND; ingest rejected the
// key, not R). The status topic grows to 6 partitions. Past DEDUPE_WINDOW
// (or after a Redis loss) ingest's seen index and the dispatcher's
// duplicate index no longer hold R: the status-topic check is the only
// guard, and it read the wrong partition and replayed R: paid twice.
func TestReplayAfterStatusTopicGrewIsRefused(t *testing.T) {
	e := newDLQEnv(t)
	const before, after = 3, 6 // newDLQEnv's status topic has 3 partitions
	id := movedKey(e.topics.Status, before, after)
	for _, st := range []payout.Status{payout.StatusBatched, payout.StatusSubmitted, payout.StatusApproved} {
		e.produce(statusRecord(t, e.codec, e.topics.Status, id, st, time.Now()))
	}
	at := e.deadLetter("wrong-key", e.value(piiRequest(id)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))

	// While the topic has its original partition count the replay is refused.
	if it := e.replay("--offset", at, "--dry-run")[at]; it.Verdict != VerdictRefused {
		t.Fatalf("before the status topic grew: %s %q, want refused", it.Verdict, it.Reason)
	}

	growTopic(t, e.cl, e.topics.Status, after)

	it := e.replay("--offset", at)[at]
	if it.Verdict != VerdictRefused {
		t.Errorf("R has BATCHED, SUBMITTED and APPROVED on %s (partition %d of %d), yet after the topic grew to %d partitions dlq replay says %q (%q)",
			e.topics.Status, partitionOf(e.topics.Status, []byte(id), before), before, after, it.Verdict, it.ReplayedTo)
	}
	if n := len(e.replayed()); n != 0 {
		t.Errorf("%d record(s) of the paid request %s republished to %s", n, id, e.topics.Requests)
	}
}

// trace shows a request's whole lifecycle when partitions were added to the
// status topic in the middle of it: the events written before stay in the
// partition of the old count, those after land in today's.
func TestTraceFindsEventsWrittenBeforeTheTopicGrew(t *testing.T) {
	k := testenv.Kafka(t)
	topic := k.Topic(t, "status", 3)
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cl := k.Client(t)
	id := movedKey(topic, 3, 6)
	event := func(st, prev payout.Status) *kgo.Record {
		sc := payout.StatusChange{EventID: payout.EventID("status", id, string(st)), RequestID: id, Status: st, AmountInCents: 123_400,
			OriginAccountID: "acct-1", OccurredAt: time.Now(), Source: payout.SourceIngest}
		if prev != "" {
			sc.PreviousStatus = &prev
		}
		v, err := c.AppendStatusChange(nil, &sc)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: topic, Key: []byte(id), Value: v}
	}
	k.Produce(t, topic, event(payout.StatusBatched, ""), event(payout.StatusSubmitted, payout.StatusBatched))
	growTopic(t, cl, topic, 6)
	k.Produce(t, topic, event(payout.StatusApproved, payout.StatusSubmitted))

	got, res := traceStatuses(t, k, topic, id)
	if fmt.Sprint(got) != "[BATCHED SUBMITTED APPROVED]" {
		t.Fatalf("trace of %s shows %v, want [BATCHED SUBMITTED APPROVED] (partition %d now, %d before)", id, got,
			partitionOf(topic, []byte(id), 6), partitionOf(topic, []byte(id), 3))
	}
	if len(res.Notes) == 0 {
		t.Errorf("no note says the events span partitions")
	}
}

// Rule 3b after the status topic grew: a request's events may be in any
// partition its key fell in at a smaller count, so the history covers the
// dead letter only if each of those partitions still reaches back far
// enough. Today's partition reaching back 40 days is not enough when
// another of them was trimmed with nothing older kept.
func TestReplayAfterGrowthNeedsEveryPartitionOfTheKeyToCover(t *testing.T) {
	e := newDLQEnv(t)
	const n = 3 // the status topic's partitions (newDLQEnv)
	id := ""
	for i := 0; id == ""; i++ {
		if k := fmt.Sprintf("never-handled-%d", i); len(keyPartitions(e.topics.Status, []byte(k), n)) > 1 {
			id = k
		}
	}
	parts := keyPartitions(e.topics.Status, []byte(id), n)
	filler := func(p int32) string {
		for i := 0; ; i++ {
			if k := fmt.Sprintf("filler-%d", i); partitionOf(e.topics.Status, []byte(k), n) == p {
				return k
			}
		}
	}
	old := func(p int32) {
		r := statusRecord(t, e.codec, e.topics.Status, filler(p), payout.StatusApproved, time.Now())
		r.Timestamp = time.Now().Add(-40 * 24 * time.Hour)
		e.produce(r)
	}
	for _, p := range parts {
		e.produce(statusRecord(t, e.codec, e.topics.Status, filler(p), payout.StatusBatched, time.Now()))
	}
	e.trimStatus()
	old(parts[0]) // today's partition reaches 40 days back; the others keep nothing
	at := e.deadLetter(id, e.value(piiRequest(id)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	if it := e.replay("--offset", at, "--dry-run")[at]; it.Verdict != VerdictRefused {
		t.Fatalf("partitions %v of %s, only %d reaching back: %s %q, want refused", parts, id, parts[0], it.Verdict, it.Reason)
	}
	for _, p := range parts[1:] {
		old(p)
	}
	if it := e.replay("--offset", at)[at]; it.Verdict != VerdictReplayed {
		t.Fatalf("every partition of %s reaches 40 days back: %s %q, want replayed", id, it.Verdict, it.Reason)
	}
}

// Rules 4 and 5 read the request topic only in the partition a requestId
// hashes to at today's partition count. A record written before partitions
// were added (operators scaling ingest during the incident) stays where it
// was, and the check read another partition.
//
// Sequence, request topic at 3 partitions: dead letter A (request RA) is
// replayed; the producer sends request RB of dead letter B again itself.
// Ingest has not handled either yet (no status event). The request topic
// grows to 6, moving both keys. A second dlq replay of A and B found
// neither record and republished both: a second copy of RA and of RB.
func TestReplayAfterRequestTopicGrewIsRefused(t *testing.T) {
	e := newDLQEnv(t)
	const before, after = 3, 6 // newDLQEnv's request topic has 3 partitions
	moved := func(prefix string) string {
		for i := 0; ; i++ {
			k := fmt.Sprintf("%s-%d", prefix, i)
			if partitionOf(e.topics.Requests, []byte(k), before) != partitionOf(e.topics.Requests, []byte(k), after) {
				return k
			}
		}
	}
	ra, rb := moved("replayed-before-growth"), moved("resent-before-growth")
	a := e.deadLetter("wrong-key-a", e.value(piiRequest(ra)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	b := e.deadLetter("wrong-key-b", e.value(piiRequest(rb)), fmt.Errorf("decode: %w", events.ErrUnknownSchema))
	if it := e.replay("--offset", a)[a]; it.Verdict != VerdictReplayed {
		t.Fatalf("first replay of %s: %s %q", a, it.Verdict, it.Reason)
	}
	resent := e.produce(&kgo.Record{Topic: e.topics.Requests, Key: []byte(rb), Value: e.value(piiRequest(rb))})

	growTopic(t, e.cl, e.topics.Requests, after)

	got := e.replay("--offset", a+","+b)
	if it := got[a]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "already replayed") {
		t.Errorf("dead letter %s (%s) was replayed at %d partitions, yet at %d dlq replay says %s %q",
			a, ra, before, after, it.Verdict, it.Reason)
	}
	if it := got[b]; it.Verdict != VerdictRefused || !strings.Contains(it.Reason, "at "+resent+" (sent again)") {
		t.Errorf("the producer re-sent %s at %s before the topic grew, yet dlq replay says %s %q", rb, resent, it.Verdict, it.Reason)
	}
	if n := len(e.replayed()); n != 1 {
		t.Errorf("%d replayed records on %s, want 1 (the first run's)", n, e.topics.Requests)
	}
}

// reconcile took a request's status to be the last event the scan of the
// whole status topic delivered, as if one requestId were one partition.
// After partitions are added to payouts.status.v1 in the middle of a
// request's lifecycle, its events before lie in the partition of the old
// count and those after in today's, and the scan reads partitions in no
// order of theirs: an old partition read after the new one put the
// request back to SUBMITTED. Its final status then "differs" from the
// provider's when they agree, and a final status of ours against a
// provider still pending (we said FAILED, the provider may yet pay) agrees,
// since neither side is final.
//
// Sequence, status topic at 3 partitions: A and B are batched and
// submitted; the topic grows to 4, moving both keys (A from partition 0 to
// 1, B from 1 to 0, so that whichever of the two partitions is read first,
// one of them is read new before old); both are APPROVED at Wompi and on
// our topic. reconcile must find nothing.
func TestReconcileAfterStatusTopicGrewTakesTheLatestStatus(t *testing.T) {
	e := newReconcileEnv(t)
	const before, after = 3, 4 // newReconcileEnv's status topic has 3 partitions
	moved := func(prefix string, from, to int32) string {
		for i := 0; ; i++ {
			k := fmt.Sprintf("%s-%d", prefix, i)
			if partitionOf(e.topic, []byte(k), before) == from && partitionOf(e.topic, []byte(k), after) == to {
				return k
			}
		}
	}
	a, b := moved("rec-grown-a", 0, 1), moved("rec-grown-b", 1, 0)
	amounts := map[string]int64{a: 1_100_000, b: 2_200_000}
	pid, txs := e.pay("batch-grown", amounts)
	for _, id := range []string{a, b} {
		if txs[id].Status != wompi.TransactionApproved {
			t.Fatalf("%s settled %s; the test expects APPROVED", id, txs[id].Status)
		}
		e.history(id, pid, txs[id].ID, amounts[id], e.at) // BATCHED, SUBMITTED
	}
	growTopic(t, e.k.Client(t), e.topic, after)
	w, batch := "wompi", "batch-grown"
	for _, id := range []string{a, b} {
		payoutID, txID, prev := pid, txs[id].ID, payout.StatusSubmitted
		sc := payout.StatusChange{EventID: payout.EventID("status", id, string(payout.StatusApproved)), RequestID: id, Status: payout.StatusApproved,
			PreviousStatus: &prev, AmountInCents: amounts[id], OriginAccountID: wompitest.AccountMain, OccurredAt: e.at.Add(time.Hour),
			Source: payout.SourcePoll, Rail: &w, BatchID: &batch, PayoutID: &payoutID, TransactionID: &txID}
		v, err := e.codec.AppendStatusChange(nil, &sc)
		if err != nil {
			t.Fatal(err)
		}
		e.k.Produce(t, e.topic, &kgo.Record{Topic: e.topic, Key: []byte(id), Value: v})
	}
	e.clock.Advance(24 * time.Hour)

	r, table, code := e.reconcile()
	t.Logf("payoutsctl reconcile --day %s\n%s", reconcileDay, table)
	if code != 0 || len(r.Differences) != 0 {
		t.Errorf("A and B are APPROVED on both sides, their events straddling the status topic's growth from %d to %d partitions: exit %d, differences %+v",
			before, after, code, r.Differences)
	}
	if len(r.Rails) != 1 || r.Rails[0].Matched != 2 {
		t.Errorf("summary %+v, want 2 matched", r.Rails)
	}
}

// writtenAfter ordered two partitions of a key by where they come in
// keyPartitions at today's count, as if the topic had grown once. After a
// second growth, before the reconcile, that order is not the history's:
// the key's partition at today's count may be the one it had before the
// first growth (or come later in the list than it), so the events the
// first growth moved to a new partition read as the older ones.
//
// Sequence, status topic at 3 partitions: A is batched and submitted; the
// topic grows to 4 (A moves from its partition to another); A is APPROVED
// on Wompi and on our topic; the topic grows to 6, where keyPartitions
// lists A's first partition before its second. reconcile must find
// nothing.
//
// The records' timestamps decide first, so the test stamps the APPROVED
// itself: a millisecond after the SUBMITTED, and in the same millisecond
// (two events written one right after the other, as a loaded producer
// does). A tie was left to keyPartitions, whose order is the wrong one
// here: reconcile read A as SUBMITTED whenever the wall clock had not
// moved to the next millisecond between the two produces.
func TestReconcileAfterTwoGrowthsTakesTheLatestStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration // the APPROVED's timestamp after the SUBMITTED's
	}{
		{"stamped a millisecond later", time.Millisecond},
		{"stamped in the same millisecond", 0},
	} {
		t.Run(tc.name, func(t *testing.T) { reconcileAfterTwoGrowths(t, tc.after) })
	}
}

func reconcileAfterTwoGrowths(t *testing.T, after time.Duration) {
	e := newReconcileEnv(t)
	const before, mid, end = 3, 4, 6
	var a string
	for i := 0; ; i++ {
		k := fmt.Sprintf("rec-twice-%d", i)
		p3, p4 := partitionOf(e.topic, []byte(k), before), partitionOf(e.topic, []byte(k), mid)
		ps := keyPartitions(e.topic, []byte(k), end)
		if p3 != p4 && slices.Index(ps, p3) < slices.Index(ps, p4) {
			a = k
			break
		}
	}
	amounts := map[string]int64{a: 1_300_000}
	pid, txs := e.pay("batch-twice", amounts)
	if txs[a].Status != wompi.TransactionApproved {
		t.Fatalf("%s settled %s; the test expects APPROVED", a, txs[a].Status)
	}
	e.history(a, pid, txs[a].ID, amounts[a], e.at) // BATCHED, SUBMITTED
	var submitted time.Time                        // the SUBMITTED record's timestamp
	for _, r := range e.k.ReadAll(t, e.topic) {
		var sc payout.StatusChange
		if err := e.codec.DecodeStatusChange(r.Value, &sc); err != nil {
			t.Fatal(err)
		}
		if sc.Status == payout.StatusSubmitted {
			submitted = r.Timestamp
		}
	}
	if submitted.IsZero() {
		t.Fatal("no SUBMITTED record read back")
	}
	growTopic(t, e.k.Client(t), e.topic, mid)
	w, batch, payoutID, txID, prev := "wompi", "batch-twice", pid, txs[a].ID, payout.StatusSubmitted
	sc := payout.StatusChange{EventID: payout.EventID("status", a, string(payout.StatusApproved)), RequestID: a, Status: payout.StatusApproved,
		PreviousStatus: &prev, AmountInCents: amounts[a], OriginAccountID: wompitest.AccountMain, OccurredAt: e.at.Add(time.Hour),
		Source: payout.SourcePoll, Rail: &w, BatchID: &batch, PayoutID: &payoutID, TransactionID: &txID}
	v, err := e.codec.AppendStatusChange(nil, &sc)
	if err != nil {
		t.Fatal(err)
	}
	e.k.Produce(t, e.topic, &kgo.Record{Topic: e.topic, Key: []byte(a), Value: v, Timestamp: submitted.Add(after)})
	growTopic(t, e.k.Client(t), e.topic, end)
	e.clock.Advance(24 * time.Hour)

	r, table, code := e.reconcile()
	t.Logf("payoutsctl reconcile --day %s\n%s", reconcileDay, table)
	if code != 0 || len(r.Differences) != 0 {
		t.Errorf("A is APPROVED on both sides, its events straddling the first of two growths (%d, %d, %d partitions), the APPROVED stamped %v after the SUBMITTED: exit %d, differences %+v",
			before, mid, end, after, code, r.Differences)
	}
}

// writtenAfter across the partitions of a key whose topic grew twice (3, 4,
// then 6 partitions, keyPartitions listing its first partition before its
// second): offsets decide within a partition, timestamps across two, then
// statuses (a same-millisecond tie), and keyPartitions only for a repeated
// status. Each rule has a case that only it gets right.
func TestWrittenAfterOrdersAKeysEventsAcrossGrowths(t *testing.T) {
	const topic = "payouts.status.v1"
	var key []byte
	var first, second int32 // the key's partition at 3, then at 4
	for i := 0; key == nil; i++ {
		k := []byte(fmt.Sprintf("twice-%d", i))
		p3, p4 := partitionOf(topic, k, 3), partitionOf(topic, k, 4)
		if ps := keyPartitions(topic, k, 6); p3 != p4 && slices.Index(ps, p3) < slices.Index(ps, p4) {
			key, first, second = k, p3, p4
		}
	}
	at := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	ev := func(p int32, off int64, at time.Time, st payout.Status) statusEvent {
		return statusEvent{part: p, off: off, at: at, status: st}
	}
	for _, tc := range []struct {
		name   string
		e1, e2 statusEvent
		want   bool // e2 was written after e1
	}{
		{"one partition: the larger offset, whatever its timestamp",
			ev(first, 1, at, payout.StatusSubmitted), ev(first, 2, at.Add(-time.Second), payout.StatusApproved), true},
		{"one partition: the smaller offset is older",
			ev(first, 2, at, payout.StatusApproved), ev(first, 1, at.Add(time.Second), payout.StatusSubmitted), false},
		{"across partitions: the later timestamp",
			ev(first, 1, at, payout.StatusSubmitted), ev(second, 0, at.Add(time.Millisecond), payout.StatusApproved), true},
		{"across partitions: a new life after a FAILED is stamped later, though its status is not further",
			ev(first, 2, at, payout.StatusFailed), ev(second, 0, at.Add(time.Second), payout.StatusBatched), true},
		{"across partitions: the old life's FAILED is older than the new BATCHED",
			ev(second, 0, at.Add(time.Second), payout.StatusBatched), ev(first, 2, at, payout.StatusFailed), false},
		{"same millisecond: APPROVED follows SUBMITTED",
			ev(first, 1, at, payout.StatusSubmitted), ev(second, 0, at, payout.StatusApproved), true},
		{"same millisecond: SUBMITTED does not follow APPROVED",
			ev(second, 0, at, payout.StatusApproved), ev(first, 1, at, payout.StatusSubmitted), false},
		{"same millisecond, same status: the key's partition at the larger count",
			ev(second, 0, at, payout.StatusApproved), ev(first, 1, at, payout.StatusApproved), true},
	} {
		if got := writtenAfter(topic, key, 6, tc.e1, tc.e2); got != tc.want {
			t.Errorf("%s: writtenAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// trace after two growths (3, 4, then 6 partitions): the request's BATCHED
// and SUBMITTED were written at 3, its APPROVED at 4. The events are shown
// in the order they were written whatever the order of the key's
// partitions (reconcile's writtenAfter: the records' timestamps first),
// and the rest of a lifecycle is found even when today's partition holds
// its start again (the key falls in the same partition at 6 as at 3).
func TestTraceAfterTwoGrowthsShowsTheWholeLifecycleInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		fits func(p3, p4, p6 int32, ps []int32) bool
	}{
		{"today's partition empty, the older count's partition ranked newer", func(p3, p4, p6 int32, ps []int32) bool {
			return p3 != p4 && p6 != p3 && p6 != p4 && slices.Index(ps, p3) < slices.Index(ps, p4)
		}},
		{"today's partition holds the start again, the last event elsewhere", func(p3, p4, p6 int32, ps []int32) bool {
			return p3 != p4 && p6 == p3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testenv.Kafka(t)
			topic := k.Topic(t, "status", 3)
			c, err := events.NewCodec(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var id string
			for i := 0; ; i++ {
				id = fmt.Sprintf("trace-twice-%d", i)
				key := []byte(id)
				if tc.fits(partitionOf(topic, key, 3), partitionOf(topic, key, 4), partitionOf(topic, key, 6), keyPartitions(topic, key, 6)) {
					break
				}
			}
			at := time.Now().Truncate(time.Millisecond)
			event := func(st, prev payout.Status, written time.Time) *kgo.Record {
				sc := payout.StatusChange{EventID: payout.EventID("status", id, string(st)), RequestID: id, Status: st, AmountInCents: 123_400,
					OriginAccountID: "acct-1", OccurredAt: written, Source: payout.SourceIngest}
				if prev != "" {
					sc.PreviousStatus = &prev
				}
				v, err := c.AppendStatusChange(nil, &sc)
				if err != nil {
					t.Fatal(err)
				}
				return &kgo.Record{Topic: topic, Key: []byte(id), Value: v, Timestamp: written}
			}
			cl := k.Client(t)
			k.Produce(t, topic, event(payout.StatusBatched, "", at), event(payout.StatusSubmitted, payout.StatusBatched, at.Add(time.Millisecond)))
			growTopic(t, cl, topic, 4)
			k.Produce(t, topic, event(payout.StatusApproved, payout.StatusSubmitted, at.Add(2*time.Millisecond)))
			growTopic(t, cl, topic, 6)

			if got, _ := traceStatuses(t, k, topic, id); fmt.Sprint(got) != "[BATCHED SUBMITTED APPROVED]" {
				t.Fatalf("trace of %s shows %v, want [BATCHED SUBMITTED APPROVED] (partitions at 3, 4, 6: %d, %d, %d)", id, got,
					partitionOf(topic, []byte(id), 3), partitionOf(topic, []byte(id), 4), partitionOf(topic, []byte(id), 6))
			}
		})
	}
}

// traceStatuses runs trace's read of the status topic for id, and returns
// the statuses it shows, in its order, with its result.
func traceStatuses(t *testing.T, k *testenv.Cluster, topic, id string) ([]string, *TraceResult) {
	t.Helper()
	tool := New(testConfig(map[string]string{"KAFKA_BROKERS": k.BrokersCSV(), "TOPIC_STATUS": topic}), nil)
	res := &TraceResult{RequestID: id, Topic: topic}
	if err := tool.traceEvents(context.Background(), res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range res.Events {
		got = append(got, e.Status)
	}
	return got, res
}
