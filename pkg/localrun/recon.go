package localrun

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay/sfptest"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Tally follows every request of a run through the status topic. It is safe
// for concurrent use.
type Tally struct {
	mu          sync.Mutex
	m           *Marketplace
	kinds       []Kind
	amounts     []int64
	published   []int64 // unix ms
	status      []uint8 // index in tallyStatuses
	deferred    []bool
	batchOf     []int32  // the batch that BATCHED the request (index+1 in names; 0: none)
	payoutOf    []int32  // the payout that SUBMITTED it (index+1 in names; 0: none)
	doubleBatch []string // requests BATCHED into two different batches
	doubleSub   []string // requests SUBMITTED in two different payouts
	lifecycle   []string // events that break one forward-only lifecycle per requestId
	reasons     map[payout.Status]map[string]int
	latencies   []time.Duration // publish -> SUBMITTED
	submittedAt []int64         // each request's first SUBMITTED, Unix ms (its occurredAt)
	payouts     map[string]struct{}
	singles     map[string]int // rail -> single payouts SUBMITTED
	// names interns batch and payout ids: a million requests share a few
	// hundred of each.
	names     []string
	nameIdx   map[string]int32
	finals    int
	submitted int
	events    int
	foreign   int
	// untilSubmitted: the load run follows requests up to SUBMITTED only.
	untilSubmitted bool
}

// NewTally prepares to follow n requests of m's run.
func NewTally(m *Marketplace, n int) *Tally {
	return &Tally{m: m, kinds: make([]Kind, n), amounts: make([]int64, n), published: make([]int64, n),
		status: make([]uint8, n), deferred: make([]bool, n), batchOf: make([]int32, n), payoutOf: make([]int32, n),
		reasons: map[payout.Status]map[string]int{}, payouts: map[string]struct{}{}, nameIdx: map[string]int32{},
		singles: map[string]int{}}
}

// tallyStatuses numbers the statuses for the tally's compact slice; 0 is
// "none yet".
var tallyStatuses = append([]payout.Status{""}, payout.Statuses...)

func statusCode(s payout.Status) uint8 {
	for i, v := range tallyStatuses {
		if v == s {
			return uint8(i)
		}
	}
	return 0
}

func (t *Tally) st(i int) payout.Status { return tallyStatuses[t.status[i]] }

// intern returns the name's index+1 in names.
func (t *Tally) intern(s string) int32 {
	if v, ok := t.nameIdx[s]; ok {
		return v
	}
	t.names = append(t.names, s)
	v := int32(len(t.names))
	t.nameIdx[s] = v
	return v
}

// name returns the interned name of index+1 v ("" for 0).
func (t *Tally) name(v int32) string {
	if v == 0 {
		return ""
	}
	return t.names[v-1]
}

// Published records that request i, of kind k and amount, was published.
func (t *Tally) Published(i int, k Kind, amount int64, at time.Time) {
	t.mu.Lock()
	t.kinds[i], t.amounts[i], t.published[i] = k, amount, at.UnixMilli()
	t.mu.Unlock()
}

// Observe takes one status event.
func (t *Tally) Observe(sc *payout.StatusChange) {
	i, ok := t.m.Index(sc.RequestID)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events++
	if !ok || i >= len(t.status) {
		t.foreign++
		return
	}
	switch sc.Status {
	case payout.StatusBatched:
		if b := *sc.BatchID; t.batchOf[i] != 0 && t.name(t.batchOf[i]) != b {
			t.doubleBatch = append(t.doubleBatch, sc.RequestID)
		} else {
			t.batchOf[i] = t.intern(b)
		}
	case payout.StatusDeferred:
		t.deferred[i] = true
	case payout.StatusSubmitted, payout.StatusPending:
		// A Wompi SUBMITTED names the batch's payout; a single payout's
		// names the provider's payout as its transactionId. A PENDING (the
		// tracker's, from the provider) names them too, and stands for a
		// SUBMITTED the status gate left out because the tracker's PENDING
		// came first: the request reached the provider all the same.
		pid, single := sc.PayoutID, false
		if pid == nil && sc.Rail != nil && *sc.Rail != "wompi" {
			pid, single = sc.TransactionID, true
		}
		if pid != nil {
			if p := *pid; t.payoutOf[i] != 0 && t.name(t.payoutOf[i]) != p {
				t.doubleSub = append(t.doubleSub, sc.RequestID)
			} else if t.payoutOf[i] == 0 {
				t.payoutOf[i] = t.intern(p)
				if single {
					t.singles[*sc.Rail]++
				} else {
					t.payouts[p] = struct{}{}
				}
				t.submitted++
				t.latencies = append(t.latencies, sc.OccurredAt.Sub(time.UnixMilli(t.published[i])))
				t.submittedAt = append(t.submittedAt, sc.OccurredAt.UnixMilli())
			}
		}
	}
	if cur := t.st(i); !payout.CanTransition(cur, sc.Status) {
		// One lifecycle per requestId: a repeat of the current status may
		// be a redelivered event (the tally keeps no eventIds), and a
		// request may be deferred more than once; anything else breaks it.
		if cur != sc.Status && len(t.lifecycle) < 100 {
			t.lifecycle = append(t.lifecycle, fmt.Sprintf("%s: %s then %s from %s", sc.RequestID, cur, sc.Status, sc.Source))
		}
		return
	}
	t.status[i] = statusCode(sc.Status)
	if sc.Status.Final() {
		t.finals++
		code := ""
		if sc.ReasonCode != nil {
			code = *sc.ReasonCode
		}
		if t.reasons[sc.Status] == nil {
			t.reasons[sc.Status] = map[string]int{}
		}
		t.reasons[sc.Status][code]++
	}
}

// Progress returns how many requests are settled (final, or waiting for
// their dispersion day) and how many were submitted to Wompi.
func (t *Tally) Progress() (settled, submitted, payouts int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.status {
		if t.settled(i, t.st(i)) {
			settled++
		}
	}
	return settled, t.submitted, len(t.payouts)
}

// settled reports whether request i needs nothing more in this run: a final
// status, or a scheduled request Wompi holds until its dispersion day.
func (t *Tally) settled(i int, s payout.Status) bool {
	if s.Final() || t.untilSubmitted && t.payoutOf[i] != 0 {
		return true
	}
	k := t.kinds[i]
	return (k == KindScheduled || k == KindRecurring) && (s == payout.StatusSubmitted || s == payout.StatusPending)
}

// Report is the reconciliation of a run.
type Report struct {
	Requested, Rejected, Submitted, Approved, Failed, Cancelled int
	Returned                                                    int
	// Singles counts the single payouts SUBMITTED per rail (SmartFastPay,
	// WEpayout); Batches counts Wompi's.
	Singles map[string]int
	// Accepted counts, per rail, the requests of the run that the rail's
	// simulator ledger accepted (at least once; more than once is in
	// DuplicatesPaid).
	Accepted                                 map[rail.Name]int
	Deferred, ScheduledWaiting, Batches, DLQ int
	// IngestBatches counts the distinct batches that BATCHED the requests.
	IngestBatches                                              int
	AwaitingSettlement                                         int
	RejectedBy, FailedBy                                       map[string]int
	RequestedCents, SubmittedCents, ApprovedCents, FailedCents int64
	LedgerCents                                                int64
	DuplicatesPaid                                             []string
	Lifecycle                                                  []string
	Lost                                                       []string
	// LostAt is the last status the status topic gave a lost request (none:
	// absent).
	LostAt         map[string]payout.Status
	AmountMismatch []string
	// RejectedPaid are requests whose final status is REJECTED although a
	// rail's ledger accepted them: reported refused, yet paid.
	RejectedPaid []string
	Latency      Percentiles
	// SteadyPerSec is the rate of first SUBMITTEDs between the tenth and
	// the ninetieth percentile of their times: the run without its start
	// (a first start's grace, the first batch filling) and its tail. 0 when
	// those times are under 10 ms apart (too few to time).
	SteadyPerSec float64
	Elapsed      time.Duration
	Load         *LoadFigures
}

// OK reports whether the reconciliation holds: nothing paid twice, nothing
// lost, every accepted amount equal to its request.
func (r *Report) OK() bool {
	return len(r.DuplicatesPaid) == 0 && len(r.Lost) == 0 && len(r.AmountMismatch) == 0 && len(r.Lifecycle) == 0 &&
		len(r.RejectedPaid) == 0
}

// Percentiles of a latency distribution.
type Percentiles struct{ P50, P90, P99, Max time.Duration }

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Percentiles{at(0.50), at(0.90), at(0.99), s[len(s)-1]}
}

// steadyRate is the rate of the events at times ms (Unix ms, any order)
// between their tenth and ninetieth percentiles; 0 when those are under
// 10 ms apart.
func steadyRate(ms []int64) float64 {
	if len(ms) < 10 {
		return 0
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	lo, hi := len(s)/10, len(s)*9/10
	span := s[hi] - s[lo]
	if span < 10 {
		return 0
	}
	return float64(hi-lo) / (float64(span) / 1000)
}

// Reconcile compares the tally with the in-process simulators' audit
// ledgers (the single-payout rails' may be nil).
func (t *Tally) Reconcile(sim *wompitest.Server, sfp *sfptest.Server, wep *weptest.Server, dlq int, elapsed time.Duration) *Report {
	v := t.ledgerOf(sim)
	t.addRailLedgers(v, sfp, wep)
	return t.reconcile(v, dlq, elapsed)
}

// addRailLedgers adds the single-payout rails' ledgers to v: the amount of
// each payout they made for a request of the run, and the requests posted
// more than once.
func (t *Tally) addRailLedgers(v *ledgerView, sfp *sfptest.Server, wep *weptest.Server) {
	if sfp != nil {
		v.paidTwice = append(v.paidTwice, sfp.Duplicates()...)
	}
	if wep != nil {
		v.paidTwice = append(v.paidTwice, wep.Duplicates()...)
	}
	for i, k := range t.kinds {
		id := t.m.RequestID(i)
		switch {
		case k == KindSmartFastPay && sfp != nil:
			if e, ok := sfp.LedgerEntry(id); ok {
				v.amounts[i] = e.AmountsInCents
				v.accepted[rail.SmartFastPay]++
			}
		case k == KindWEpayout && wep != nil:
			if e, ok := wep.LedgerEntry(id); ok {
				v.amounts[i] = e.AmountsInCents
				v.accepted[rail.WEpayout]++
			}
		}
	}
}

func (t *Tally) reconcile(ledger *ledgerView, dlq int, elapsed time.Duration) *Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &Report{Requested: len(t.status), DLQ: dlq, Batches: len(t.payouts), Elapsed: elapsed, Singles: maps.Clone(t.singles),
		RejectedBy: t.reasons[payout.StatusRejected], FailedBy: t.reasons[payout.StatusFailed], Accepted: maps.Clone(ledger.accepted)}
	if r.RejectedBy == nil {
		r.RejectedBy = map[string]int{}
	}
	if r.FailedBy == nil {
		r.FailedBy = map[string]int{}
	}
	r.DuplicatesPaid = append(r.DuplicatesPaid, ledger.paidTwice...)
	r.DuplicatesPaid = append(r.DuplicatesPaid, t.doubleSub...)
	r.Lifecycle = append(r.Lifecycle, t.lifecycle...)
	for i := range t.status {
		s := t.st(i)
		id := t.m.RequestID(i)
		r.RequestedCents += t.amounts[i]
		if t.deferred[i] {
			r.Deferred++
		}
		if t.payoutOf[i] != 0 {
			r.SubmittedCents += t.amounts[i]
			if a := ledger.amounts[i]; len(a) == 0 || a[0] != t.amounts[i] {
				r.AmountMismatch = append(r.AmountMismatch, id)
			} else {
				r.LedgerCents += a[0]
			}
		}
		switch {
		case s == payout.StatusRejected:
			r.Rejected++
			if len(ledger.amounts[i]) > 0 {
				r.RejectedPaid = append(r.RejectedPaid, id)
			}
		case s == payout.StatusApproved:
			r.Approved++
			r.ApprovedCents += t.amounts[i]
		case s == payout.StatusFailed:
			r.Failed++
			r.FailedCents += t.amounts[i]
		case s == payout.StatusCancelled:
			r.Cancelled++
		case s == payout.StatusReturned:
			r.Returned++
		case t.untilSubmitted && t.payoutOf[i] != 0:
			r.AwaitingSettlement++
		case t.settled(i, s):
			r.ScheduledWaiting++
		default:
			r.Lost = append(r.Lost, id)
			if s != "" {
				if r.LostAt == nil {
					r.LostAt = map[string]payout.Status{}
				}
				r.LostAt[id] = s
			}
		}
	}
	seen := map[int32]struct{}{}
	for _, b := range t.batchOf {
		if b != 0 {
			seen[b] = struct{}{}
		}
	}
	r.IngestBatches = len(seen)
	r.Submitted = 0
	for _, p := range t.payoutOf {
		if p != 0 {
			r.Submitted++
		}
	}
	r.Latency = percentiles(t.latencies)
	r.SteadyPerSec = steadyRate(t.submittedAt)
	return r
}

// Print writes the reconciliation table.
func (r *Report) Print(w io.Writer) {
	// row prints a count and an amount; a negative n (noCount) leaves the
	// count column empty, for a row that is an amount only.
	row := func(label string, n int, cents int64, note string) {
		amount := ""
		if cents != 0 {
			amount = payout.FormatCOP(cents)
		}
		count := ""
		if n >= 0 {
			count = strconv.Itoa(n)
		}
		fmt.Fprintf(w, "  %-38s %9s  %22s  %s\n", label, count, amount, note)
	}
	sub := func(m map[string]int) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" {
				k = "(no code)"
			}
			fmt.Fprintf(w, "      %-34s %9d\n", k, m[strings.TrimSuffix(k, "(no code)")])
		}
	}
	fmt.Fprintf(w, "\nReconciliation (%s)\n", r.Elapsed.Round(time.Millisecond))
	row("requested", r.Requested, r.RequestedCents, "")
	row("rejected (final)", r.Rejected, 0, "")
	sub(r.RejectedBy)
	row("dead-lettered (undecodable bytes)", r.DLQ, 0, "sent on purpose; never requests")
	row("batches posted to Wompi", r.Batches, 0, "")
	for _, name := range []string{"smartfastpay", "wepayout"} {
		if n := r.Singles[name]; n > 0 {
			row("single payouts posted to "+name, n, 0, "one POST per payee")
		}
	}
	row("submitted to the rails", r.Submitted, r.SubmittedCents, "")
	row("approved (paid)", r.Approved, r.ApprovedCents, "")
	row("failed (final)", r.Failed, r.FailedCents, "")
	sub(r.FailedBy)
	row("cancelled (final)", r.Cancelled, 0, "")
	if r.Returned > 0 {
		row("returned after payment (final)", r.Returned, 0, "SmartFastPay refunds")
	}
	row("deferred, then retried", r.Deferred, 0, "")
	row("scheduled, waiting for dispersion", r.ScheduledWaiting, 0, "Wompi pays them on their day")
	if r.AwaitingSettlement > 0 {
		row("submitted, settling after the run", r.AwaitingSettlement, 0, "load run: followed up to SUBMITTED")
	}
	for _, name := range rail.Names {
		if n, ok := r.Accepted[name]; ok {
			row("accepted by "+string(name)+"'s ledger", n, 0, "requests of this run the simulator took")
		}
	}
	row("rails' ledger amount", noCount, r.LedgerCents, amountNote(r))
	row("duplicates paid", len(r.DuplicatesPaid), 0, "must be 0")
	row("lost", len(r.Lost), 0, "must be 0")
	row("lifecycles broken (status topic)", len(r.Lifecycle), 0, "must be 0")
	row("rejected, yet accepted by a rail", len(r.RejectedPaid), 0, "must be 0")
	if r.Latency.Max > 0 {
		fmt.Fprintf(w, "  publish -> SUBMITTED latency          p50 %v  p90 %v  p99 %v  max %v\n",
			r.Latency.P50.Round(time.Millisecond), r.Latency.P90.Round(time.Millisecond), r.Latency.P99.Round(time.Millisecond), r.Latency.Max.Round(time.Millisecond))
	}
	lost := make([]string, 0, min(len(r.Lost), 20))
	for _, id := range r.Lost[:min(len(r.Lost), 20)] {
		if s, ok := r.LostAt[id]; ok {
			id += "(" + string(s) + ")"
		}
		lost = append(lost, id)
	}
	for _, l := range []struct {
		name string
		ids  []string
	}{{"paid twice", r.DuplicatesPaid}, {"lost", lost}, {"amount mismatch", r.AmountMismatch}, {"lifecycle broken", r.Lifecycle},
		{"rejected yet accepted by a rail", r.RejectedPaid}} {
		if len(l.ids) > 0 {
			fmt.Fprintf(w, "  %s: %s\n", l.name, strings.Join(l.ids[:min(len(l.ids), 20)], " "))
		}
	}
	if r.Load != nil {
		r.Load.Print(w)
	}
	if r.OK() {
		fmt.Fprintln(w, "RECONCILIATION OK")
	} else {
		fmt.Fprintln(w, "RECONCILIATION FAILED")
	}
}

func amountNote(r *Report) string {
	if len(r.AmountMismatch) == 0 && r.LedgerCents == r.SubmittedCents {
		return "= submitted amount"
	}
	return fmt.Sprintf("MISMATCH on %d requests", len(r.AmountMismatch))
}

// noCount is the count of a report row that is an amount only.
const noCount = -1
