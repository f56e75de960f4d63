package payout

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStatusTransitions(t *testing.T) {
	cases := []struct {
		from, to Status
		ok       bool
	}{
		{"", StatusBatched, true},
		{"", StatusRejected, true},
		{"", StatusApproved, true},
		{StatusBatched, StatusDeferred, true},
		{StatusBatched, StatusSubmitted, true},
		{StatusDeferred, StatusSubmitted, true},
		{StatusSubmitted, StatusPending, true},
		{StatusSubmitted, StatusApproved, true},
		{StatusPending, StatusFailed, true},
		{StatusPending, StatusCancelled, true},
		{StatusBatched, StatusRejected, true},
		{StatusApproved, StatusPending, false}, // a late PENDING never overwrites APPROVED
		{StatusApproved, StatusFailed, false},
		{StatusRejected, StatusBatched, false},
		{StatusPending, StatusPending, false},
		{StatusSubmitted, StatusBatched, false},
		{StatusSubmitted, StatusDeferred, false},
		{StatusBatched, "PAID", false},
		// RETURNED: a reversal of a paid request, final.
		{StatusApproved, StatusReturned, true},
		{"", StatusReturned, true}, // a consumer that saw nothing before
		{StatusPending, StatusReturned, false},
		{StatusSubmitted, StatusReturned, false},
		{StatusFailed, StatusReturned, false},
		{StatusCancelled, StatusReturned, false},
		{StatusRejected, StatusReturned, false},
		{StatusReturned, StatusReturned, false},
		{StatusReturned, StatusApproved, false},
		{StatusReturned, StatusPending, false},
	}
	for _, tc := range cases {
		if got := CanTransition(tc.from, tc.to); got != tc.ok {
			t.Errorf("CanTransition(%q, %q) = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
	var finals []Status
	for _, s := range Statuses {
		if s.Final() {
			finals = append(finals, s)
		}
	}
	if want := []Status{StatusRejected, StatusApproved, StatusFailed, StatusCancelled, StatusReturned}; !slices.Equal(finals, want) {
		t.Fatalf("final statuses %v, want %v", finals, want)
	}
	// Statuses is the Avro enum, in order; RETURNED was appended last.
	if len(Statuses) != 9 || Statuses[8] != StatusReturned {
		t.Fatalf("Statuses = %v", Statuses)
	}
	for _, s := range Statuses {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
}

func TestBatchTransitions(t *testing.T) {
	cases := []struct {
		from, to BatchStatus
		ok       bool
	}{
		{"", BatchPending, true},
		{BatchPending, BatchPartialPayment, true},
		{BatchPartialPayment, BatchTotalPayment, true},
		{BatchPending, BatchTotalPayment, true},
		{BatchTotalPayment, BatchPartialPayment, false},
		{BatchPartialPayment, BatchPending, false},
		{BatchRejected, BatchPending, false},
	}
	for _, tc := range cases {
		if got := CanBatchTransition(tc.from, tc.to); got != tc.ok {
			t.Errorf("CanBatchTransition(%q, %q) = %v, want %v", tc.from, tc.to, got, tc.ok)
		}
	}
}

func TestDay(t *testing.T) {
	utcMinus5 := time.FixedZone("UTC-5", -5*60*60)
	// 04:59 UTC is still the previous day at UTC-5.
	if got := DayIn(time.Date(2026, 11, 22, 4, 59, 0, 0, time.UTC), utcMinus5); got != "2026-11-21" {
		t.Fatalf("DayIn = %s", got)
	}
	if got := DayIn(time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC), utcMinus5); got != "2026-11-22" {
		t.Fatalf("DayIn = %s", got)
	}
	d := Day("2026-12-31")
	if d.Next() != "2027-01-01" {
		t.Fatalf("Next = %s", d.Next())
	}
	if got := d.StartIn(utcMinus5).UTC(); !got.Equal(time.Date(2026, 12, 31, 5, 0, 0, 0, time.UTC)) {
		t.Fatalf("StartIn = %s", got)
	}
	if _, err := ParseDay("2026-13-01"); err == nil {
		t.Fatal("bad day parsed")
	}
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, utcMinus5)
	tomorrow := time.Date(2026, 11, 22, 8, 30, 0, 0, utcMinus5)
	if got := (Schedule{DispersionDatetime: &tomorrow}).BudgetDayIn(now, utcMinus5); got != "2026-11-22" {
		t.Fatalf("scheduled BudgetDayIn = %s", got)
	}
	if got := (Schedule{}).BudgetDayIn(now, utcMinus5); got != "2026-11-21" {
		t.Fatalf("immediate BudgetDayIn = %s", got)
	}
}

func TestMoney(t *testing.T) {
	for cents, want := range map[int64]string{1000000: "$10,000.00", 5: "$0.05", 150_000_000_000: "$1,500,000,000.00", -12345: "-$123.45"} {
		if got := FormatCOP(cents); got != want {
			t.Errorf("FormatCOP(%d) = %s, want %s", cents, got, want)
		}
	}
	if _, ok := AddCents(1<<62, 1<<62); ok {
		t.Error("overflow not detected")
	}
	if s, ok := AddCents(1, 2); !ok || s != 3 {
		t.Error("AddCents(1,2)")
	}
}

func TestEventIDDeterministic(t *testing.T) {
	a := EventID("status", "req-1", "APPROVED", "tx-1")
	if a != EventID("status", "req-1", "APPROVED", "tx-1") || len(a) != 32 {
		t.Fatalf("EventID not deterministic: %s", a)
	}
	if a == EventID("status", "req-1", "FAILED", "tx-1") || EventID("ab", "c") == EventID("a", "bc") {
		t.Fatal("EventID collides on different parts")
	}
	// Pinned: consumers deduplicate by eventId, so a transition emitted
	// again by a newer version must carry the same id (the first 16 bytes
	// of SHA-256 over the parts joined by 0x1f, hex).
	if a != "dbffef50bc22cb4e6cc96bc3d76082b5" {
		t.Errorf("EventID changed: %s", a)
	}
	if got := EventID(strings.Repeat("x", 300), "y"); got != "b51625d115414c9b1e9f5d71728204c4" {
		t.Errorf("EventID of long parts changed: %s", got)
	}
}

func TestCheckLifecycles(t *testing.T) {
	ev := func(id, rid string, st Status) StatusChange {
		return StatusChange{EventID: id, RequestID: rid, Status: st}
	}
	cases := []struct {
		name string
		evs  []StatusChange
		ok   bool
	}{
		{"forward path", []StatusChange{ev("1", "a", StatusBatched), ev("2", "a", StatusSubmitted), ev("3", "a", StatusApproved)}, true},
		{"repeated eventId is deduped", []StatusChange{ev("1", "a", StatusBatched), ev("1", "a", StatusBatched), ev("2", "a", StatusRejected)}, true},
		{"deferred twice", []StatusChange{ev("1", "a", StatusBatched), ev("2", "a", StatusDeferred), ev("3", "a", StatusDeferred), ev("4", "a", StatusSubmitted)}, true},
		{"two finals", []StatusChange{ev("1", "a", StatusBatched), ev("2", "a", StatusRejected), ev("3", "a", StatusApproved)}, false},
		{"backwards", []StatusChange{ev("1", "a", StatusApproved), ev("2", "a", StatusSubmitted)}, false},
		{"second BATCHED with another id", []StatusChange{ev("1", "a", StatusBatched), ev("2", "a", StatusSubmitted), ev("3", "a", StatusBatched)}, false},
		{"requests are independent", []StatusChange{ev("1", "a", StatusApproved), ev("2", "b", StatusBatched)}, true},
		// A consumer deduplicating by eventId never sees the APPROVED: the
		// request stops at SUBMITTED for it.
		{"final under an earlier event's id", []StatusChange{ev("1", "a", StatusBatched), ev("2", "a", StatusSubmitted), ev("2", "a", StatusApproved)}, false},
		{"one eventId for two requests", []StatusChange{ev("1", "a", StatusBatched), ev("1", "b", StatusBatched)}, false},
	}
	for _, c := range cases {
		if err := CheckLifecycles(c.evs); (err == nil) != c.ok {
			t.Errorf("%s: CheckLifecycles = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

// OptString gives nil for "" without allocating, and its own copy of any
// other string.
func TestOptString(t *testing.T) {
	if OptString("") != nil {
		t.Fatal(`OptString("") is not nil`)
	}
	if p := OptString("tx-1"); p == nil || *p != "tx-1" {
		t.Fatalf(`OptString("tx-1") = %v`, p)
	}
	empty, full := "", "tx-1"
	if n := testing.AllocsPerRun(100, func() { sink = OptString(empty) }); n != 0 {
		t.Errorf(`OptString("") allocates %v times`, n)
	}
	if n := testing.AllocsPerRun(100, func() { sink = OptString(full) }); n != 1 {
		t.Errorf(`OptString("tx-1") allocates %v times, want 1`, n)
	}
}

var sink *string

// A provider's status read again is taken when it lies beyond the event's:
// every allowed transition, a RETURNED after any status not final, and for
// batches another status of the same rank; never a status behind, or out of
// a final one.
func TestBeyond(t *testing.T) {
	for _, c := range []struct {
		from, to Status
		want     bool
	}{
		{"", StatusPending, true},
		{StatusPending, StatusApproved, true},
		{StatusPending, StatusReturned, true},
		{StatusSubmitted, StatusReturned, true},
		{StatusApproved, StatusReturned, true},
		{StatusApproved, StatusPending, false},
		{StatusFailed, StatusReturned, false},
		{StatusReturned, StatusApproved, false},
		{StatusPending, StatusPending, false},
		{StatusPending, "bogus", false},
	} {
		if got := Beyond(c.from, c.to); got != c.want {
			t.Errorf("Beyond(%q, %q) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	for _, c := range []struct {
		from, to BatchStatus
		want     bool
	}{
		{BatchAFEOnHold, BatchPending, true},
		{BatchPending, BatchAFEOnHold, true},
		{BatchNotApproved, BatchPartialPayment, true},
		{BatchPending, BatchTotalPayment, true},
		{BatchPending, BatchPending, false},
		{BatchPartialPayment, BatchPending, false},
		{BatchTotalPayment, BatchRejected, false},
		{BatchPending, "bogus", false},
	} {
		if got := BatchBeyond(c.from, c.to); got != c.want {
			t.Errorf("BatchBeyond(%q, %q) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}
