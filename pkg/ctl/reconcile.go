package ctl

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The kinds of a reconciliation difference.
const (
	MissingAtProvider  = "missing at the provider"    // we submitted it that day; the provider's record has no row
	MissingInOurEvents = "missing in our events"      // the provider has it; no status event of ours names it submitted
	StatusDiffers      = "status differs"             // both have it; the statuses do not agree
	AmountDiffers      = "amount differs"             // both have it; the amounts do not agree
	PaidMoreThanOnce   = "more than once at provider" // two payments of one requestId: two rows, or a row that is not the one our SUBMITTED names
)

// ReconcileResult compares one day of our status events with the
// providers' records of that day.
type ReconcileResult struct {
	Day         string          `json:"day"`
	Rails       []RailReconcile `json:"rails"`
	Differences []Difference    `json:"differences"`
}

// RailReconcile is one rail's summary.
type RailReconcile struct {
	Rail     string    `json:"rail"`
	TimeZone string    `json:"timeZone"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Source   string    `json:"source"`   // where the provider's record came from
	Ours     int       `json:"ours"`     // requests we submitted that day
	Provider int       `json:"provider"` // the provider's rows of the day
	Matched  int       `json:"matched"`  // rows that agree with our events
}

// Difference is one disagreement.
type Difference struct {
	Rail                  string `json:"rail"`
	Kind                  string `json:"kind"`
	RequestID             string `json:"requestId"`
	OurStatus             string `json:"ourStatus,omitempty"`
	ProviderStatus        string `json:"providerStatus,omitempty"`
	OurAmountInCents      int64  `json:"ourAmountInCents,omitempty"`
	ProviderAmountInCents int64  `json:"providerAmountInCents,omitempty"`
	ProviderID            string `json:"providerId,omitempty"` // the provider's transaction id
	// OurRail and OurProviderID name the payment our SUBMITTED names, on a
	// "more than once at provider" row that is not that payment.
	OurRail       string `json:"ourRail,omitempty"`
	OurProviderID string `json:"ourProviderId,omitempty"`
}

// Failed reports a difference: the command then exits 1.
func (r *ReconcileResult) Failed() bool { return len(r.Differences) > 0 }

// ReconcileHelp is reconcile's --help text.
const ReconcileHelp = `reconcile --day YYYY-MM-DD [--rail R] compares our status events with the
provider's record of one day, in the rail's time zone (wompi and
smartfastpay: America/Bogota; wepayout: America/Sao_Paulo).

Ours: every request with a SUBMITTED event of the day carrying the
provider's ids (payouts.status.v1, all partitions), with its latest status
(final or not) and its amount. The provider's: Wompi's daily transactions
report of that day (GET /reports/payouts, then the CSV behind GET
/reports/presigned_url: a report exists once the day is over); SmartFastPay
and WEpayout through their listing of payouts created that day, when their
credentials are set.

A request whose SUBMITTED was not emitted (the provider's status reached
the topic first, or a batch adopted after a Redis loss) is recognised at
the provider by the id its later events carry.

Differences, by kind: missing at the provider, missing in our events, status
differs (a status not final on both sides counts as agreeing), amount
differs, more than once at provider. A provider row of a requestId we
submitted is our payment only on the rail our events name and under the
provider id our SUBMITTED carries (whatever day that was); any other row of
it is a second payment, "more than once at provider". The command exits 1
on any difference.
`

// ourRequest is what our status events say of one request.
type ourRequest struct {
	rail        rail.Name
	status      payout.Status // the latest (latest.status)
	submittedAt time.Time     // of the first SUBMITTED; zero when none was emitted
	amount      int64
	// providerID is the provider's id of our payment: the first
	// SUBMITTED's, else the first event's that names one.
	providerID string
	latest     statusEvent // the event of status
}

// statusEvent is a status event of a request: where it lies, its record's
// timestamp and its status.
type statusEvent struct {
	part   int32
	off    int64
	at     time.Time
	status payout.Status
}

// Reconcile compares day (YYYY-MM-DD) on the rail given, or every enabled
// rail (Wompi, and the single-payout rails whose credentials are set).
func (t *Tool) Reconcile(ctx context.Context, day, only string) (*ReconcileResult, error) {
	d, err := payout.ParseDay(day)
	if err != nil || day == "" {
		return nil, fmt.Errorf("reconcile: --day YYYY-MM-DD is required")
	}
	enabled := t.st.Rails.Enabled()
	var names []rail.Name
	if only != "" {
		n := rail.Name(only)
		if !enabled[n] {
			return nil, fmt.Errorf("reconcile: rail %s is not enabled: set its credentials (see --help)", n)
		}
		names = []rail.Name{n}
	} else {
		names = enabled.Names()
	}
	ours, err := t.ourRequests(ctx)
	if err != nil {
		return nil, err
	}
	res := &ReconcileResult{Day: day, Rails: []RailReconcile{}, Differences: []Difference{}}
	for _, n := range names {
		loc := rail.Location(n)
		rr := RailReconcile{Rail: string(n), TimeZone: loc.String(), From: d.StartIn(loc)}
		rr.To = rr.From.AddDate(0, 0, 1)
		var rows []providerRow
		switch n {
		case rail.Wompi:
			rows, rr.Source, err = t.wompiDay(ctx, rr.From)
		default:
			rows, rr.Source, err = t.singleDay(ctx, n, rr.From, rr.To)
		}
		if err != nil {
			return nil, fmt.Errorf("reconcile %s: %w", n, err)
		}
		rr.Provider = len(rows)
		res.Differences = append(res.Differences, compareDay(n, rr.From, rr.To, ours, rows, &rr)...)
		res.Rails = append(res.Rails, rr)
	}
	slices.SortStableFunc(res.Differences, func(a, b Difference) int {
		if a.Kind != b.Kind {
			if a.Kind < b.Kind {
				return -1
			}
			return 1
		}
		if a.RequestID < b.RequestID {
			return -1
		}
		if a.RequestID > b.RequestID {
			return 1
		}
		return 0
	})
	return res, nil
}

// ourRequests reads the whole status topic: per requestId, its latest
// status and its submission.
func (t *Tool) ourRequests(ctx context.Context) (map[string]*ourRequest, error) {
	opts, err := t.kafka()
	if err != nil {
		return nil, err
	}
	codec, err := t.events(ctx)
	if err != nil {
		return nil, err
	}
	topic := t.st.Topics.Status
	parts, err := allPartitions(ctx, opts, topic)
	if err != nil {
		return nil, err
	}
	ours := map[string]*ourRequest{}
	var undecodable int
	_, err = scan(ctx, opts, topic, parts, nil, func(r *kgo.Record) error {
		var sc payout.StatusChange
		if err := codec.DecodeStatusChange(r.Value, &sc); err != nil {
			undecodable++
			return nil
		}
		o := ours[sc.RequestID]
		if o == nil {
			o = &ourRequest{rail: rail.Wompi, latest: statusEvent{part: r.Partition, off: -1}}
			ours[sc.RequestID] = o
		}
		if sc.Rail != nil && *sc.Rail != "" {
			o.rail = rail.Name(*sc.Rail)
		}
		// Statuses only move forward, and a partition's records come in
		// offset order; but partitions added to the topic during a
		// request's lifecycle put its later events in another partition,
		// which the scan may read before the old one: the latest status is
		// the one latest in the key's partitions (keyPartitions: today's
		// first, the older counts' after), not the last one read.
		if ev := (statusEvent{part: r.Partition, off: r.Offset, at: r.Timestamp, status: sc.Status}); writtenAfter(topic, r.Key, len(parts), o.latest, ev) {
			o.status, o.latest = sc.Status, ev
		}
		if sc.Status == payout.StatusSubmitted && o.submittedAt.IsZero() {
			if id := deref(sc.TransactionID); id != "" {
				o.submittedAt, o.amount, o.providerID = sc.OccurredAt, sc.AmountInCents, id
			}
		} else if id := deref(sc.TransactionID); id != "" && o.providerID == "" {
			// SUBMITTED may be missing (the provider's status reached
			// the topic first, or a batch adopted after a Redis loss):
			// the first event naming the provider's id names our
			// payment, without a day of submission.
			o.amount, o.providerID = sc.AmountInCents, id
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if undecodable > 0 {
		return nil, fmt.Errorf("reconcile: %d record(s) of %s do not decode (SCHEMA_REGISTRY_URL?): our side would be incomplete", undecodable, topic)
	}
	return ours, nil
}

// writtenAfter reports whether the status event e2 of key was written after
// e1, in a topic of n partitions where only partitions are added: in one
// partition by offset; across two, by the records' timestamps (the later
// written, the later stamped). Two events stamped in the same millisecond
// (written one right after the other) are ordered by their statuses,
// which only move forward within a life: the one a transition from the
// other leads to is the later. Only when neither leads to the other (a
// repeated status) does the key's partition decide: the one it falls in
// at the larger partition count (earlier in keyPartitions) is the later.
// That order is the history's only while the topic grew once since: after
// two growths the key's partition today may be the one it had before the
// first (or come before the first growth's new one).
//
// Timestamps come before statuses because a request may start a new life
// (a CANCELLED or FAILED transaction sent again): its new BATCHED is later
// than the final status of its old one.
func writtenAfter(topic string, key []byte, n int, e1, e2 statusEvent) bool {
	if e1.part == e2.part {
		return e2.off > e1.off
	}
	if !e1.at.IsZero() && !e2.at.IsZero() && !e1.at.Equal(e2.at) {
		return e2.at.After(e1.at)
	}
	if payout.CanTransition(e1.status, e2.status) {
		return true
	}
	if payout.CanTransition(e2.status, e1.status) {
		return false
	}
	ps := keyPartitions(topic, key, n)
	i1, i2 := slices.Index(ps, e1.part), slices.Index(ps, e2.part)
	if i1 < 0 || i2 < 0 {
		return true // not where a worker's producer puts it: as read
	}
	return i2 < i1
}

// providerRow is one payee of the provider's record of the day.
type providerRow struct {
	id         string // our requestId
	providerID string
	status     string        // as the provider says it
	mapped     payout.Status // "" when it maps to nothing known
	amount     int64
}

// wompiDay reads Wompi's daily transactions report whose window starts at
// from.
func (t *Tool) wompiDay(ctx context.Context, from time.Time) ([]providerRow, string, error) {
	wc, err := t.wompi()
	if err != nil {
		return nil, "", err
	}
	var execID string
	for rep, err := range wc.Reports(ctx, wompi.ReportsFilter{Periodicity: wompi.PeriodicityDaily, ReportType: wompi.ReportTypeTransactions}) {
		if err != nil {
			return nil, "", err
		}
		if rep.QueryStartDate.Equal(from) {
			execID = rep.ID
			break
		}
		if !rep.QueryStartDate.IsZero() && rep.QueryStartDate.Before(from.AddDate(0, 0, -7)) {
			break // listed most recent first: the day is not there
		}
	}
	if execID == "" {
		return nil, "", fmt.Errorf("GET /reports/payouts lists no daily transactions report for the day starting %s (a day's report exists once it is over)", stamp(from))
	}
	u, err := wc.ReportURL(ctx, execID, wompi.ReportIntegrationPayouts)
	if err != nil {
		return nil, "", err
	}
	rows, err := fetchReport(ctx, u)
	if err != nil {
		return nil, "", fmt.Errorf("report %s: %w", execID, err)
	}
	return rows, "wompi daily transactions report " + execID, nil
}

// reportColumns are the columns reconcile reads from a transactions report.
var reportColumns = []string{"id", "reference", "status", "amountInCents"}

// fetchReport downloads and parses a transactions report CSV. Errors never
// quote the presigned URL (it is a credential until it expires).
func fetchReport(ctx context.Context, u string) ([]providerRow, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errors.New("the presigned URL does not parse")
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return nil, fmt.Errorf("download the CSV: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download the CSV: HTTP %d", resp.StatusCode)
	}
	cr := csv.NewReader(resp.Body)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("the CSV has no header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range reportColumns {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("the CSV has no column %q (has %v)", c, headerNames(head))
		}
	}
	var rows []providerRow
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("the CSV: %w", err)
		}
		amount, err := strconv.ParseInt(rec[col["amountInCents"]], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("the CSV, line %d: amountInCents is not an integer", line)
		}
		st := rec[col["status"]]
		rows = append(rows, providerRow{id: rec[col["reference"]], providerID: rec[col["id"]], status: st, mapped: wompiStatus(st), amount: amount})
	}
}

// columnName is what a report's column name looks like.
var columnName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// headerNames renders a report's first line for an error: the cells that
// read as column names, "?" for the others. A first line that is not the
// header (a report without one) is a payee's row: its legal id, account
// number or email must not reach the output, --reveal or not.
func headerNames(head []string) []string {
	out := make([]string, len(head))
	for i, h := range head {
		out[i] = "?"
		if columnName.MatchString(h) {
			out[i] = h
		}
	}
	return out
}

// wompiStatus maps a Wompi transaction status to ours.
func wompiStatus(s string) payout.Status {
	switch wompi.TransactionStatus(s) {
	case wompi.TransactionPending, wompi.TransactionProcessing:
		return payout.StatusPending
	case wompi.TransactionApproved:
		return payout.StatusApproved
	case wompi.TransactionFailed:
		return payout.StatusFailed
	case wompi.TransactionCancelled:
		return payout.StatusCancelled
	case wompi.TransactionRejected:
		return payout.StatusRejected
	}
	return ""
}

// singleDay lists a single-payout rail's payouts created in [from, to).
func (t *Tool) singleDay(ctx context.Context, n rail.Name, from, to time.Time) ([]providerRow, string, error) {
	clients, err := t.st.Rails.Singles(20 * time.Second)
	if err != nil {
		return nil, "", err
	}
	c, ok := clients[n]
	if !ok {
		return nil, "", fmt.Errorf("rail %s is not enabled", n)
	}
	var rows []providerRow
	for p, err := range c.List(ctx, rail.ListFilter{From: from, To: to}) {
		if err != nil {
			return nil, "", err
		}
		if !p.CreatedAt.IsZero() && (p.CreatedAt.Before(from) || !p.CreatedAt.Before(to)) {
			continue
		}
		rows = append(rows, providerRow{id: p.ID, providerID: p.ProviderID, status: p.ProviderStatus, mapped: p.Status, amount: p.AmountInCents})
	}
	return rows, string(n) + " payouts listing", nil
}

// compareDay compares the rail's requests we submitted in [from, to) with
// the provider's rows of that day.
func compareDay(n rail.Name, from, to time.Time, ours map[string]*ourRequest, rows []providerRow, rr *RailReconcile) []Difference {
	var diffs []Difference
	byID := map[string][]providerRow{}
	for _, r := range rows {
		byID[r.id] = append(byID[r.id], r)
	}
	ids := make([]string, 0, len(ours))
	for id, o := range ours {
		if o.rail == n && !o.submittedAt.IsZero() && !o.submittedAt.Before(from) && o.submittedAt.Before(to) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	rr.Ours = len(ids)
	for _, id := range ids {
		o := ours[id]
		if !slices.ContainsFunc(byID[id], func(r providerRow) bool { return r.providerID == o.providerID }) {
			// No row of the day is our payment, even if others of the
			// requestId are (those are reported below).
			diffs = append(diffs, Difference{Rail: string(n), Kind: MissingAtProvider, RequestID: id, OurStatus: string(o.status),
				OurAmountInCents: o.amount, ProviderID: o.providerID})
		}
	}
	pids := make([]string, 0, len(byID))
	for id := range byID {
		pids = append(pids, id)
	}
	slices.Sort(pids)
	for _, id := range pids {
		rs := byID[id]
		o, ok := ours[id]
		if !ok || o.providerID == "" {
			if len(rs) > 1 {
				diffs = append(diffs, moreThanOnce(n, id, rs))
			}
			for _, r := range rs {
				d := Difference{Rail: string(n), Kind: MissingInOurEvents, RequestID: id, ProviderStatus: r.status,
					ProviderAmountInCents: r.amount, ProviderID: r.providerID}
				if ok {
					d.OurStatus = string(o.status) // rejected or not submitted by us
				}
				diffs = append(diffs, d)
			}
			continue
		}
		// Our SUBMITTED names one payment: a rail and the provider's id.
		// A row of the requestId on another rail, or under another id (on
		// any day, ours may be of the day before), is a second payment.
		var own []providerRow
		var others int
		for _, r := range rs {
			if o.rail == n && r.providerID == o.providerID {
				own = append(own, r)
				continue
			}
			others++
			diffs = append(diffs, Difference{Rail: string(n), Kind: PaidMoreThanOnce, RequestID: id, OurStatus: string(o.status),
				ProviderStatus: r.status, OurAmountInCents: o.amount, ProviderAmountInCents: r.amount, ProviderID: r.providerID,
				OurRail: string(o.rail), OurProviderID: o.providerID})
		}
		if len(own) > 1 && others == 0 {
			diffs = append(diffs, moreThanOnce(n, id, own)) // our payment listed twice
		}
		for _, r := range own {
			same := true
			if !statusAgrees(o.status, r.mapped) {
				same = false
				diffs = append(diffs, Difference{Rail: string(n), Kind: StatusDiffers, RequestID: id, OurStatus: string(o.status),
					ProviderStatus: r.status, OurAmountInCents: o.amount, ProviderAmountInCents: r.amount, ProviderID: r.providerID})
			}
			if o.amount != r.amount {
				same = false
				diffs = append(diffs, Difference{Rail: string(n), Kind: AmountDiffers, RequestID: id, OurStatus: string(o.status),
					ProviderStatus: r.status, OurAmountInCents: o.amount, ProviderAmountInCents: r.amount, ProviderID: r.providerID})
			}
			if same && len(rs) == 1 {
				rr.Matched++
			}
		}
	}
	return diffs
}

// moreThanOnce is the difference of rs, two or more rows of one requestId.
func moreThanOnce(n rail.Name, id string, rs []providerRow) Difference {
	return Difference{Rail: string(n), Kind: PaidMoreThanOnce, RequestID: id, ProviderStatus: rs[0].status + " and others",
		ProviderAmountInCents: rs[0].amount, ProviderID: rs[0].providerID}
}

// statusAgrees: a status not final on both sides agrees (the tracker has
// not heard yet); final statuses must be equal, our RETURNED being a
// reversed APPROVED.
func statusAgrees(ours, theirs payout.Status) bool {
	if theirs == "" {
		return !ours.Final()
	}
	if !ours.Final() || !theirs.Final() {
		return !ours.Final() && !theirs.Final()
	}
	if ours == payout.StatusReturned {
		return theirs == payout.StatusApproved || theirs == payout.StatusReturned
	}
	return ours == theirs
}

// Tables renders the summary and the differences by kind.
func (r *ReconcileResult) Tables() []Table {
	sum := Table{Title: "Reconciliation of " + r.Day, Columns: []string{"RAIL", "FROM", "TO", "OURS", "PROVIDER", "MATCHED", "PROVIDER RECORD"}}
	for _, rr := range r.Rails {
		sum.Rows = append(sum.Rows, []string{rr.Rail, rr.From.Format(time.RFC3339), rr.To.Format(time.RFC3339), strconv.Itoa(rr.Ours),
			strconv.Itoa(rr.Provider), strconv.Itoa(rr.Matched), rr.Source})
	}
	if len(r.Differences) == 0 {
		sum.Notes = []string{"no difference"}
	} else {
		sum.Notes = []string{fmt.Sprintf("%d difference(s)", len(r.Differences))}
	}
	out := []Table{sum}
	for _, kind := range []string{MissingAtProvider, MissingInOurEvents, StatusDiffers, AmountDiffers, PaidMoreThanOnce} {
		tb := Table{Title: "Difference: " + kind, Columns: []string{"RAIL", "REQUEST", "OUR STATUS", "PROVIDER STATUS", "OUR AMOUNT", "PROVIDER AMOUNT", "PROVIDER ID"}}
		for _, d := range r.Differences {
			if d.Kind != kind {
				continue
			}
			oa, pa := "-", "-"
			if d.Kind != MissingInOurEvents {
				oa = cents(d.OurAmountInCents)
			}
			if d.Kind != MissingAtProvider {
				pa = cents(d.ProviderAmountInCents)
			}
			row := []string{d.Rail, d.RequestID, orDash(d.OurStatus), orDash(d.ProviderStatus), oa, pa, orDash(d.ProviderID)}
			if kind == PaidMoreThanOnce {
				ourPayment := "-"
				if d.OurProviderID != "" {
					ourPayment = d.OurRail + " " + d.OurProviderID
				}
				row = append(row, ourPayment)
			}
			tb.Rows = append(tb.Rows, row)
		}
		if kind == PaidMoreThanOnce {
			tb.Columns = append(tb.Columns, "OUR PAYMENT")
		}
		if len(tb.Rows) > 0 {
			out = append(out, tb)
		}
	}
	return out
}
