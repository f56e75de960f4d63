package ctl

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/ingest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/track"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// TraceResult is everything known about one request: its status history,
// what Redis holds and what the provider says by our own ids.
type TraceResult struct {
	RequestID string `json:"requestId"`
	// Where the history was read: the status topic's partition of the
	// requestId, how many records it held and how long the read took.
	Topic          string        `json:"topic"`
	Partition      int32         `json:"partition"`
	RecordsScanned int64         `json:"recordsScanned"`
	ScanTook       time.Duration `json:"scanTookNanos"`
	Events         []TraceEvent  `json:"events"`
	Redis          []RedisFact   `json:"redis"`
	Provider       []ProviderTx  `json:"provider"`
	Notes          []string      `json:"notes,omitempty"`
}

// TraceEvent is one PayoutStatusChanged of the request.
type TraceEvent struct {
	// Partition is the event's partition: the request's partition
	// (TraceResult.Partition), or one its key fell in before partitions
	// were added to the topic.
	Partition       int32     `json:"partition"`
	Offset          int64     `json:"offset"`
	OccurredAt      time.Time `json:"occurredAt"`
	Rail            string    `json:"rail"`
	Status          string    `json:"status"`
	PreviousStatus  string    `json:"previousStatus,omitempty"`
	Source          string    `json:"source"`
	ReasonCode      string    `json:"reasonCode,omitempty"`
	ReasonMessage   string    `json:"reasonMessage,omitempty"`
	BatchID         string    `json:"batchId,omitempty"`
	PayoutID        string    `json:"payoutId,omitempty"`
	TransactionID   string    `json:"transactionId,omitempty"`
	AmountInCents   int64     `json:"amountInCents"`
	OriginAccountID string    `json:"originAccountId,omitempty"`
	EventID         string    `json:"eventId"`

	writtenAt time.Time // the record's timestamp: orders events across partitions
}

// RedisFact is one thing a worker's Redis state says about the request.
type RedisFact struct {
	Rail  string `json:"rail"`
	Owner string `json:"owner"` // the worker whose state it is
	What  string `json:"what"`
	Value string `json:"value"`
}

// ProviderTx is one transaction the provider holds for the request.
type ProviderTx struct {
	Rail            string `json:"rail"`
	PayoutID        string `json:"payoutId"`
	PayoutReference string `json:"payoutReference"`
	PayoutStatus    string `json:"payoutStatus"`
	TransactionID   string `json:"transactionId"`
	Reference       string `json:"reference"`
	Status          string `json:"status"`
	AmountInCents   int64  `json:"amountInCents"`
	FailureCode     string `json:"failureCode,omitempty"`
	FailureMessage  string `json:"failureMessage,omitempty"`
	PayeeName       string `json:"payeeName"`
	PayeeLegalID    string `json:"payeeLegalId"`
	PayeeAccount    string `json:"payeeAccountNumber"`
	PayeeEmail      string `json:"payeeEmail"`
	BankCode        string `json:"bankCode"`
}

// Trace answers "what happened to request X?". The history comes from the
// status topic: only the partition the requestId is keyed to (computed as
// the producers do), read from its start to its last stable offset,
// read_committed, filtered by key. Redis and the provider are read, never
// written. Parts that cannot be reached are reported as notes; the status
// topic is required.
func (t *Tool) Trace(ctx context.Context, requestID string) (*TraceResult, error) {
	if requestID == "" {
		return nil, fmt.Errorf("trace: a requestId is required")
	}
	res := &TraceResult{RequestID: requestID, Topic: t.st.Topics.Status, Events: []TraceEvent{}, Redis: []RedisFact{}, Provider: []ProviderTx{}}
	if err := t.traceEvents(ctx, res); err != nil {
		return nil, err
	}
	batches := map[string]bool{}
	for _, e := range res.Events {
		if e.BatchID != "" {
			batches[e.BatchID] = true
		}
	}
	if err := t.traceRedis(ctx, res, batches); err != nil {
		res.Notes = append(res.Notes, "redis: "+err.Error())
	}
	if err := t.traceProvider(ctx, res, batches); err != nil {
		res.Notes = append(res.Notes, "wompi: "+err.Error())
	}
	return res, nil
}

func (t *Tool) traceEvents(ctx context.Context, res *TraceResult) error {
	opts, err := t.kafka()
	if err != nil {
		return err
	}
	codec, err := t.events(ctx)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	n, err := partitions(ctx, kadm.NewClient(cl), res.Topic)
	cl.Close()
	if err != nil {
		return err
	}
	key := []byte(res.RequestID)
	res.Partition = partitionOf(res.Topic, key, n)
	m := t.mask()
	start := time.Now()
	read := func(parts []int32) error {
		st, err := scan(ctx, opts, res.Topic, parts, key, func(r *kgo.Record) error {
			var sc payout.StatusChange
			if err := codec.DecodeStatusChange(r.Value, &sc); err != nil {
				res.Notes = append(res.Notes, fmt.Sprintf("partition %d offset %d: undecodable status event: %v", r.Partition, r.Offset, err))
				return nil
			}
			if sc.RequestID != res.RequestID {
				return nil
			}
			e := TraceEvent{Partition: r.Partition, Offset: r.Offset, OccurredAt: sc.OccurredAt, Rail: deref(sc.Rail), Status: string(sc.Status),
				Source: string(sc.Source), ReasonCode: deref(sc.ReasonCode), ReasonMessage: m.text(deref(sc.ReasonMessage)),
				BatchID: deref(sc.BatchID), PayoutID: deref(sc.PayoutID), TransactionID: deref(sc.TransactionID),
				AmountInCents: sc.AmountInCents, OriginAccountID: sc.OriginAccountID, EventID: sc.EventID, writtenAt: r.Timestamp}
			if sc.PreviousStatus != nil {
				e.PreviousStatus = string(*sc.PreviousStatus)
			}
			res.Events = append(res.Events, e)
			return nil
		})
		res.RecordsScanned += st.Records
		return err
	}
	err = read([]int32{res.Partition})
	// Events stay in the partition they were written to, and partitions
	// may have been added to the topic since: the key's earlier events
	// then lie in the partitions it fell in at smaller counts. Those are
	// read too, unless today's partition holds a whole settled lifecycle
	// (wholeLifecycle): after two growths the key may fall in today's
	// partition again, its middle or its last events in another.
	parts := keyPartitions(res.Topic, key, n)
	if err == nil && len(parts) > 1 && !wholeLifecycle(res.Events) {
		err = read(parts[1:])
		res.Events = writtenOrder(res.Topic, key, n, res.Events)
		for _, e := range res.Events {
			if e.Partition != res.Partition {
				res.Notes = append(res.Notes, "some events are in another partition than the request's: partitions were added to the topic after they were written")
				break
			}
		}
	}
	res.ScanTook = time.Since(start)
	return err
}

func (t *Tool) traceRedis(ctx context.Context, res *TraceResult, batches map[string]bool) error {
	rdb, err := t.redis(ctx)
	if err != nil {
		return err
	}
	p, id, w := t.st.RedisPrefix, res.RequestID, string(rail.Wompi)
	add := func(owner, what, value string) {
		res.Redis = append(res.Redis, RedisFact{Rail: w, Owner: owner, What: what, Value: value})
	}
	holder, found, err := ingest.SeenBy(ctx, rdb, p, id)
	if err != nil {
		return err
	}
	if found {
		add("ingest", "seen index", "held by requests record "+holder+" (partition:offset)")
	} else {
		add("ingest", "seen index", "absent")
	}
	owner, found, err := dispatch.RequestOwner(ctx, rdb, p, id)
	if err != nil {
		return err
	}
	switch {
	case !found:
		add("dispatcher", "duplicate index", "absent")
	case owner.ListedOn != "":
		add("dispatcher", "duplicate index", "listed by "+string(owner.ListedOn)+" when a recovery rebuilt the index (its batch unknown)")
	case owner.Unbanked:
		add("dispatcher", "duplicate index", "owned by batch "+owner.BatchID+", dropped by it for an unknown bank after an earlier attempt kept it: "+
			"REJECTED only once a lookup proves Wompi does not hold the batch (it may still be SUBMITTED)")
		batches[owner.BatchID] = true
	case owner.Rejected:
		add("dispatcher", "duplicate index", "owned by batch "+owner.BatchID+", rejected by it")
		batches[owner.BatchID] = true
	default:
		add("dispatcher", "duplicate index", "owned by batch "+owner.BatchID)
		batches[owner.BatchID] = true
	}
	for _, b := range sortedKeys(batches) {
		rec, ok, err := dispatch.ReadBatch(ctx, rdb, p, b)
		if err != nil {
			return err
		}
		if !ok {
			add("dispatcher", "batch "+b, "no record")
			continue
		}
		v := "state " + rec.State
		if rec.PayoutID != "" {
			v += ", payout " + rec.PayoutID
		}
		if !rec.FirstPostAt.IsZero() {
			v += ", first POST " + stamp(rec.FirstPostAt)
		}
		add("dispatcher", "batch "+b, v)
	}
	hand := submitted.New(rdb, p, 0)
	for _, e := range res.Events {
		if e.Status != string(payout.StatusSubmitted) || e.PayoutID == "" || e.TransactionID == "" {
			continue
		}
		tx, ok, err := hand.Lookup(ctx, e.PayoutID, e.TransactionID)
		if err != nil {
			return err
		}
		if !ok {
			add("dispatcher→tracker", "hand-off "+e.PayoutID+"/"+e.TransactionID, "absent")
			continue
		}
		add("dispatcher→tracker", "hand-off "+e.PayoutID+"/"+e.TransactionID,
			fmt.Sprintf("request %s, batch %s, %s", tx.RequestID, tx.BatchID, cents(tx.AmountInCents)))
		break
	}
	ks, err := track.ReadStatus(ctx, rdb, p, false, id)
	if err != nil {
		return err
	}
	v := orDash(ks.Confirmed)
	if ks.InFlight != "" {
		v += " (emitting or abandoned: " + ks.InFlight + ")"
	}
	if ks.Confirmed == "" && ks.InFlight == "" {
		v = "absent"
	}
	add("tracker", "last status", v)
	return nil
}

func (t *Tool) traceProvider(ctx context.Context, res *TraceResult, batches map[string]bool) error {
	// The single-payout rails hold the request under our id: ask each
	// enabled one.
	singles, err := t.st.Rails.Singles(20 * time.Second)
	if err != nil {
		return err
	}
	for _, n := range rail.Names {
		c := singles[n]
		if c == nil {
			continue
		}
		ps, err := c.Find(ctx, res.RequestID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			res.Provider = append(res.Provider, ProviderTx{Rail: string(n), TransactionID: p.ProviderID, Reference: p.ID,
				Status: p.ProviderStatus, AmountInCents: p.AmountInCents, FailureCode: p.Reason})
		}
	}
	if len(batches) == 0 {
		res.Notes = append(res.Notes, "wompi: no batch is known for this request, and Wompi is asked by batch reference: nothing to ask")
		return nil
	}
	wc, err := t.wompi()
	if err != nil {
		return err
	}
	m := t.mask()
	for _, b := range sortedKeys(batches) {
		pays, err := wc.FindPayoutsByReference(ctx, b)
		if err != nil {
			return err
		}
		if len(pays) == 0 {
			res.Notes = append(res.Notes, "wompi: no payout with reference "+b)
		}
		for _, p := range pays {
			for tx, err := range wc.PayoutTransactions(ctx, p.ID, wompi.TransactionsFilter{Reference: res.RequestID}) {
				if err != nil {
					return err
				}
				if tx.Reference != res.RequestID {
					continue
				}
				res.Provider = append(res.Provider, ProviderTx{Rail: string(rail.Wompi), PayoutID: p.ID, PayoutReference: p.Reference,
					PayoutStatus: string(p.Status), TransactionID: tx.ID, Reference: tx.Reference, Status: string(tx.Status),
					AmountInCents: tx.AmountInCents, FailureCode: tx.FailureReason.Code, FailureMessage: m.text(tx.FailureReason.Message),
					PayeeName: m.name(tx.PayeeInfo.Name), PayeeLegalID: m.id(tx.PayeeInfo.LegalID),
					PayeeAccount: m.account(tx.PayeeInfo.AccountNumber), PayeeEmail: m.email(tx.PayeeInfo.Email), BankCode: tx.PayeeInfo.BankCode})
			}
		}
	}
	return nil
}

// Tables renders the trace.
func (r *TraceResult) Tables() []Table {
	ev := Table{Title: fmt.Sprintf("Status history of %s (%s partition %d: %d records read in %v)",
		r.RequestID, r.Topic, r.Partition, r.RecordsScanned, r.ScanTook.Round(time.Millisecond)),
		Columns: []string{"OFFSET", "OCCURRED", "RAIL", "STATUS", "FROM", "SOURCE", "REASON", "BATCH", "PAYOUT", "TRANSACTION", "AMOUNT"}}
	for _, e := range r.Events {
		reason := e.ReasonCode
		if e.ReasonMessage != "" {
			reason += ": " + e.ReasonMessage
		}
		ev.Rows = append(ev.Rows, []string{strconv.FormatInt(e.Offset, 10), stamp(e.OccurredAt), orDash(e.Rail), e.Status,
			orDash(e.PreviousStatus), e.Source, orDash(reason), orDash(e.BatchID), orDash(e.PayoutID), orDash(e.TransactionID), cents(e.AmountInCents)})
	}
	rd := Table{Title: "Redis", Columns: []string{"RAIL", "WORKER", "WHAT", "VALUE"}}
	for _, f := range r.Redis {
		rd.Rows = append(rd.Rows, []string{f.Rail, f.Owner, f.What, f.Value})
	}
	pv := Table{Title: "Provider (by our ids: batch reference, then transaction reference)",
		Columns: []string{"RAIL", "PAYOUT", "PAYOUT STATUS", "TRANSACTION", "STATUS", "AMOUNT", "FAILURE", "PAYEE", "LEGAL ID", "ACCOUNT", "EMAIL"}, Notes: r.Notes}
	for _, p := range r.Provider {
		fail := p.FailureCode
		if p.FailureMessage != "" {
			fail += ": " + p.FailureMessage
		}
		pv.Rows = append(pv.Rows, []string{p.Rail, p.PayoutID, p.PayoutStatus, p.TransactionID, p.Status, cents(p.AmountInCents),
			orDash(fail), p.PayeeName, p.PayeeLegalID, p.PayeeAccount, p.PayeeEmail})
	}
	return []Table{ev, rd, pv}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// wholeLifecycle reports whether evs (read from one partition, in offset
// order) hold a lifecycle's start (ingest's BATCHED or REJECTED, without a
// previous status), an event of every previous status an event names (no
// gap), and end in a final status.
func wholeLifecycle(evs []TraceEvent) bool {
	start := false
	for _, e := range evs {
		if e.PreviousStatus == "" {
			start = true
		} else if !slices.ContainsFunc(evs, func(o TraceEvent) bool { return o.Status == e.PreviousStatus }) {
			return false
		}
	}
	return start && payout.Status(evs[len(evs)-1].Status).Final()
}

// writtenOrder returns evs of key, read from several partitions of a topic
// of n partitions, in the order they were written: each partition's in
// offset order, merged by writtenAfter (the records' timestamps, then
// statuses, then the key's partitions), as reconcile orders them.
func writtenOrder(topic string, key []byte, n int, evs []TraceEvent) []TraceEvent {
	byPart := map[int32][]TraceEvent{}
	for _, e := range evs {
		byPart[e.Partition] = append(byPart[e.Partition], e)
	}
	for _, l := range byPart {
		slices.SortStableFunc(l, func(a, b TraceEvent) int { return cmp.Compare(a.Offset, b.Offset) })
	}
	ev := func(e TraceEvent) statusEvent {
		return statusEvent{part: e.Partition, off: e.Offset, at: e.writtenAt, status: payout.Status(e.Status)}
	}
	out := make([]TraceEvent, 0, len(evs))
	for len(out) < len(evs) {
		var first int32 = -1
		for _, p := range slices.Sorted(maps.Keys(byPart)) {
			if len(byPart[p]) == 0 {
				continue
			}
			if first < 0 || writtenAfter(topic, key, n, ev(byPart[p][0]), ev(byPart[first][0])) {
				first = p
			}
		}
		out = append(out, byPart[first][0])
		byPart[first] = byPart[first][1:]
	}
	return out
}
