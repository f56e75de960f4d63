package ctl

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/dispatch"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// StuckResult lists what is not final past the threshold.
type StuckResult struct {
	OlderThan time.Duration `json:"olderThanNanos"`
	Items     []StuckItem   `json:"items"`
}

// StuckItem is one batch (the dispatcher has not finished it) or one
// payout (submitted, and the tracker has not seen it final).
type StuckItem struct {
	// Rail is the batch's or the payout's rail ("" for a batch record
	// written before records kept it).
	Rail string `json:"rail"`
	Kind string `json:"kind"` // "batch" or "payout"
	// ID is the batchId, the Wompi payoutId, or a single payout's
	// hand-off id (rail:providerId; PayoutID is then the provider's id).
	ID     string `json:"id"`
	Status string `json:"status"`
	// Age is counted from the payout's submission, or from the batch's
	// first POST, else from its last step; -1 when unknown (a released
	// lease and no POST).
	Age             time.Duration `json:"ageNanos"`
	Since           time.Time     `json:"since"`
	BatchID         string        `json:"batchId,omitempty"`
	PayoutID        string        `json:"payoutId,omitempty"`
	OriginAccountID string        `json:"originAccountId,omitempty"`
	// RequestID is a single payout's request (its rail pays one payee
	// per payout).
	RequestID     string `json:"requestId,omitempty"`
	AmountInCents int64  `json:"amountInCents,omitempty"`
	Transactions  int    `json:"transactions,omitempty"`
}

// Stuck lists the batches the dispatcher holds in a state that is not final
// (claimed, posting, posted, deferred) and the payouts on the tracker's
// polling schedule (submitted, not yet final), older than olderThan. It
// reads Redis only. A batch whose age is unknown is listed whatever the
// threshold.
func (t *Tool) Stuck(ctx context.Context, olderThan time.Duration) (*StuckResult, error) {
	rdb, err := t.redis(ctx)
	if err != nil {
		return nil, err
	}
	now := t.now()
	res := &StuckResult{OlderThan: olderThan, Items: []StuckItem{}}
	p := t.st.RedisPrefix
	err = dispatch.OpenBatches(ctx, rdb, p, func(r dispatch.BatchRecord) error {
		since := r.FirstPostAt
		if since.IsZero() && !r.LeaseUntil.IsZero() {
			since = r.LeaseUntil.Add(-t.st.LeaseTTL)
		}
		it := StuckItem{Rail: r.Rail, Kind: "batch", ID: r.BatchID, Status: r.State, BatchID: r.BatchID, PayoutID: r.PayoutID, Since: since, Age: -1}
		if !since.IsZero() {
			it.Age = now.Sub(since)
		}
		if it.Age < 0 || it.Age >= olderThan {
			res.Items = append(res.Items, it)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	hand := submitted.New(rdb, p, 0)
	ids, err := hand.Open(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		po, ok, err := hand.Payout(ctx, id)
		if err != nil {
			return nil, err
		}
		it := StuckItem{Rail: string(rail.Wompi), Kind: "payout", ID: id, PayoutID: id, Status: "SUBMITTED", Age: -1}
		// A single payout's hand-off id names its rail and the
		// provider's id; its status is its request's, not its batch's.
		n, providerID, single := rail.ParseHandOffID(id)
		if single {
			it.Rail, it.PayoutID = string(n), providerID
		}
		if ok {
			it.BatchID, it.OriginAccountID, it.AmountInCents, it.Transactions = po.BatchID, po.OriginAccountID, po.TotalAmountInCents, po.TransactionCount
			it.Since, it.Age = po.SubmittedAt, now.Sub(po.SubmittedAt)
			batch, statusOf := true, po.BatchID
			if single {
				tx, found, err := hand.Lookup(ctx, id, providerID)
				if err != nil {
					return nil, err
				}
				batch, statusOf, it.RequestID = false, tx.RequestID, tx.RequestID
				if !found || tx.RequestID == "" {
					statusOf = ""
				}
			}
			if statusOf != "" {
				ks, err := track.ReadStatus(ctx, rdb, p, batch, statusOf)
				if err != nil {
					return nil, err
				}
				if ks.Confirmed != "" {
					it.Status = ks.Confirmed
				}
			}
		}
		if it.Age < 0 || it.Age >= olderThan {
			res.Items = append(res.Items, it)
		}
	}
	slices.SortStableFunc(res.Items, func(a, b StuckItem) int {
		if a.Age != b.Age {
			if a.Age > b.Age {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return res, nil
}

// Tables renders the list.
func (r *StuckResult) Tables() []Table {
	tb := Table{Title: "Not final for " + r.OlderThan.String() + " or more",
		Columns: []string{"RAIL", "KIND", "ID", "STATUS", "AGE", "SINCE", "BATCH", "PAYOUT", "ACCOUNT", "AMOUNT", "TXS"}}
	for _, it := range r.Items {
		ag := "unknown"
		if it.Age >= 0 {
			ag = age(it.Age)
		}
		amount, txs := "-", "-"
		if it.Kind == "payout" {
			amount, txs = cents(it.AmountInCents), strconv.Itoa(it.Transactions)
		}
		tb.Rows = append(tb.Rows, []string{orDash(it.Rail), it.Kind, it.ID, it.Status, ag, stamp(it.Since), orDash(it.BatchID),
			orDash(it.PayoutID), orDash(it.OriginAccountID), amount, txs})
	}
	return []Table{tb}
}
