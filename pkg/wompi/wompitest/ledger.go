package wompitest

import (
	"bufio"
	"encoding/json"
	"io"
	"slices"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// LedgerEntry is the audit record of one transaction reference: every time
// a batch carrying it was accepted, in acceptance order.
type LedgerEntry struct {
	Reference string `json:"reference"`
	// Accepted counts the batches that carried the reference.
	Accepted int `json:"accepted"`
	// Approved counts the acceptances that settled APPROVED: the times the
	// payee was paid. More than 1 is a double payment.
	Approved        int                       `json:"approved"`
	PayoutIDs       []string                  `json:"payoutIds"`
	TransactionIDs  []string                  `json:"transactionIds"`
	BatchReferences []string                  `json:"batchReferences"`
	AmountsInCents  []int64                   `json:"amountsInCents"`
	Statuses        []wompi.TransactionStatus `json:"statuses"`
}

// BatchLedgerEntry is the audit record of one batch reference.
type BatchLedgerEntry struct {
	Reference      string              `json:"reference"`
	Accepted       int                 `json:"accepted"`
	PayoutIDs      []string            `json:"payoutIds"`
	Statuses       []wompi.BatchStatus `json:"statuses"`
	AmountsInCents []int64             `json:"amountsInCents"`
	Transactions   []int               `json:"transactions"`
	// IdempotencyKeys are the keys the batches were created with ("" for
	// none).
	IdempotencyKeys []string `json:"idempotencyKeys"`
}

// LedgerTotals sums the ledger.
type LedgerTotals struct {
	Batches              int   `json:"batches"`
	Transactions         int   `json:"transactions"`
	Pending              int   `json:"pending"`
	Approved             int   `json:"approved"`
	Failed               int   `json:"failed"`
	Cancelled            int   `json:"cancelled"`
	ApprovedAmountInCent int64 `json:"approvedAmountInCents"`
}

// entryOf is the ledger entry of reference ref, whose first accepted
// transaction is first.
func entryOf(ref string, first *txn) LedgerEntry {
	e := LedgerEntry{Reference: ref}
	for t := range first.acceptances() {
		e.Accepted++
		e.PayoutIDs = append(e.PayoutIDs, t.b.id)
		e.TransactionIDs = append(e.TransactionIDs, t.id)
		e.BatchReferences = append(e.BatchReferences, t.b.reference)
		e.AmountsInCents = append(e.AmountsInCents, t.w.Amount)
		e.Statuses = append(e.Statuses, t.status)
		if t.status == wompi.TransactionApproved {
			e.Approved++
		}
	}
	return e
}

// Ledger returns a snapshot of the audit ledger by transaction reference.
func (s *Server) Ledger() map[string]LedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]LedgerEntry, len(s.byTxRef))
	for ref, first := range s.byTxRef {
		out[ref] = entryOf(ref, first)
	}
	return out
}

// LedgerEntry returns one reference's record.
func (s *Server) LedgerEntry(reference string) (LedgerEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, ok := s.byTxRef[reference]
	if !ok {
		return LedgerEntry{}, false
	}
	return entryOf(reference, first), true
}

// BatchLedger returns a snapshot of the ledger by batch reference.
func (s *Server) BatchLedger() map[string]BatchLedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]BatchLedgerEntry, len(s.byBatchRef))
	for ref, bs := range s.byBatchRef {
		e := BatchLedgerEntry{Reference: ref, Accepted: len(bs)}
		for _, b := range bs {
			e.PayoutIDs = append(e.PayoutIDs, b.id)
			e.Statuses = append(e.Statuses, b.status)
			e.AmountsInCents = append(e.AmountsInCents, b.amount)
			e.Transactions = append(e.Transactions, len(b.txs))
			e.IdempotencyKeys = append(e.IdempotencyKeys, b.idemKey)
		}
		out[ref] = e
	}
	return out
}

// Duplicates returns, sorted, the transaction references accepted in more
// than one batch (or twice in one): each is a potential double payment.
func (s *Server) Duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for ref, first := range s.byTxRef {
		if first.sameRef != nil {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}

// PaidMoreThanOnce returns, sorted, the transaction references that
// settled APPROVED more than once: actual double payments.
func (s *Server) PaidMoreThanOnce() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for ref, first := range s.byTxRef {
		n := 0
		for t := range first.acceptances() {
			if t.status == wompi.TransactionApproved {
				n++
			}
		}
		if n > 1 {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}

// DuplicateBatches returns, sorted, the batch references accepted more than
// once.
func (s *Server) DuplicateBatches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for ref, bs := range s.byBatchRef {
		if len(bs) > 1 {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}

// Totals sums the ledger.
func (s *Server) Totals() LedgerTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := LedgerTotals{Batches: len(s.payouts)}
	for _, b := range s.payouts {
		for _, x := range b.txs {
			t.Transactions++
			switch x.status {
			case wompi.TransactionApproved:
				t.Approved++
				t.ApprovedAmountInCent += x.w.Amount
			case wompi.TransactionFailed:
				t.Failed++
			case wompi.TransactionCancelled:
				t.Cancelled++
			default:
				t.Pending++
			}
		}
	}
	return t
}

// Balance returns an origin account's balance.
func (s *Server) Balance(accountID string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountID]
	if !ok {
		return 0, false
	}
	return a.BalanceInCents, true
}

// LedgerAmounts is one line of the compact ledger (GET /_sim/ledger/amounts):
// what a reconciliation of a large run needs of one transaction reference.
type LedgerAmounts struct {
	Reference string `json:"r"`
	// Approved counts the acceptances that settled APPROVED.
	Approved int `json:"p,omitempty"`
	// AmountsInCents has one amount per acceptance, in acceptance order.
	AmountsInCents []int64 `json:"a"`
}

// WriteLedgerAmounts writes the compact ledger as JSON lines, one
// LedgerAmounts per reference, without building the whole ledger in memory
// first: a load run's million references stay cheap on both sides [ours].
func (s *Server) WriteLedgerAmounts(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	s.mu.Lock()
	defer s.mu.Unlock()
	var line LedgerAmounts
	for ref, first := range s.byTxRef {
		line.Reference, line.Approved, line.AmountsInCents = ref, 0, line.AmountsInCents[:0]
		for t := range first.acceptances() {
			line.AmountsInCents = append(line.AmountsInCents, t.w.Amount)
			if t.status == wompi.TransactionApproved {
				line.Approved++
			}
		}
		if err := enc.Encode(&line); err != nil {
			return err
		}
	}
	return bw.Flush()
}
