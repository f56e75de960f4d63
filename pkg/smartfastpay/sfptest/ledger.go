package sfptest

import (
	"slices"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// LedgerEntry is the audit record of one transaction.id (our id): every
// payout made for it, in creation order.
type LedgerEntry struct {
	TransactionID string `json:"transactionId"`
	// Accepted counts the payouts made for the id: more than 1 means a
	// create was sent twice.
	Accepted int `json:"accepted"`
	// Paid counts those that reached success (even if later refunded or
	// returned): the times the payee was paid. More than 1 is a double
	// payment.
	Paid int `json:"paid"`
	// Reversed counts those refunded or returned.
	Reversed       int      `json:"reversed"`
	PayoutIDs      []string `json:"payoutIds"`
	AmountsInCents []int64  `json:"amountsInCents"`
	Statuses       []string `json:"statuses"`
}

// LedgerTotals sums the ledger.
type LedgerTotals struct {
	Payouts           int   `json:"payouts"`
	TransactionIDs    int   `json:"transactionIds"`
	Duplicates        int   `json:"duplicates"`       // ids with more than one payout
	PaidMoreThanOnce  int   `json:"paidMoreThanOnce"` // ids paid more than once
	Pending           int   `json:"pending"`
	OnHold            int   `json:"onhold"`
	Success           int   `json:"success"`
	Failed            int   `json:"failed"`
	Refunded          int   `json:"refunded"`
	Returned          int   `json:"returned"`
	Other             int   `json:"other"` // set by SetStatus to an unknown status
	Refused           int64 `json:"refused"`
	PaidAmountInCents int64 `json:"paidAmountInCents"` // success, net of reversals
	BalanceInCents    int64 `json:"balanceInCents"`
	StillMoving       int   `json:"stillMoving"`
}

func entryOf(id string, ps []*payoutRec) LedgerEntry {
	e := LedgerEntry{TransactionID: id, Accepted: len(ps)}
	for _, p := range ps {
		e.PayoutIDs = append(e.PayoutIDs, p.id)
		e.AmountsInCents = append(e.AmountsInCents, p.amount)
		e.Statuses = append(e.Statuses, p.status)
		if p.paid {
			e.Paid++
		}
		if p.status == sfp.StatusRefunded || p.status == sfp.StatusReturned {
			e.Reversed++
		}
	}
	return e
}

// Accepted returns how many payouts were made for our id (railtest.Sim).
func (s *Server) Accepted(txID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byTx[txID])
}

// Ledger returns a snapshot of the audit ledger by transaction.id.
func (s *Server) Ledger() map[string]LedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]LedgerEntry, len(s.byTx))
	for id, ps := range s.byTx {
		out[id] = entryOf(id, ps)
	}
	return out
}

// LedgerEntry returns one id's record.
func (s *Server) LedgerEntry(txID string) (LedgerEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.byTx[txID]
	if !ok {
		return LedgerEntry{}, false
	}
	return entryOf(txID, ps), true
}

// Duplicates returns, sorted, the ids with more than one payout: each is a
// create sent twice, a potential double payment.
func (s *Server) Duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, ps := range s.byTx {
		if len(ps) > 1 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// PaidMoreThanOnce returns, sorted, the ids whose payee was paid (reached
// success) more than once.
func (s *Server) PaidMoreThanOnce() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, ps := range s.byTx {
		n := 0
		for _, p := range ps {
			if p.paid {
				n++
			}
		}
		if n > 1 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Totals sums the ledger.
func (s *Server) Totals() LedgerTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := LedgerTotals{Payouts: len(s.payouts), TransactionIDs: len(s.byTx), Refused: s.refused, BalanceInCents: s.balance,
		StillMoving: len(s.due)}
	for _, ps := range s.byTx {
		paid := 0
		for _, p := range ps {
			if p.paid {
				paid++
			}
		}
		if len(ps) > 1 {
			t.Duplicates++
		}
		if paid > 1 {
			t.PaidMoreThanOnce++
		}
	}
	for _, p := range s.payouts {
		switch p.status {
		case sfp.StatusPending:
			t.Pending++
		case sfp.StatusOnHold:
			t.OnHold++
		case sfp.StatusSuccess:
			t.Success++
			t.PaidAmountInCents += p.amount
		case sfp.StatusFailed:
			t.Failed++
		case sfp.StatusRefunded:
			t.Refunded++
		case sfp.StatusReturned:
			t.Returned++
		default:
			t.Other++
		}
	}
	return t
}
