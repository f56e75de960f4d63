package weptest

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LedgerEntry is the audit record of one invoice (our requestId): every
// payment accepted under it, in acceptance order.
type LedgerEntry struct {
	Invoice string `json:"invoice"`
	// Accepted counts the payments created for the invoice. More than 1 is
	// a potential double payment.
	Accepted int `json:"accepted"`
	// Paid counts those that reached 3 Paid: the times the payee was paid.
	// More than 1 is a double payment.
	Paid           int     `json:"paid"`
	PaymentIDs     []int64 `json:"paymentIds"`
	AmountsInCents []int64 `json:"amountsInCents"`
	Statuses       []int   `json:"statuses"`
}

// LedgerTotals sums the ledger.
type LedgerTotals struct {
	Payments          int   `json:"payments"`
	Invoices          int   `json:"invoices"`
	Pending           int   `json:"pending"` // 1, 2, 7 or unknown
	Paid              int   `json:"paid"`
	Failed            int   `json:"failed"`    // 4
	Rejected          int   `json:"rejected"`  // 5
	Cancelled         int   `json:"cancelled"` // 6
	PaidAmountInCents int64 `json:"paidAmountInCents"`
}

func entryOf(inv string, ps []*payment) LedgerEntry {
	e := LedgerEntry{Invoice: inv, Accepted: len(ps)}
	for _, p := range ps {
		e.PaymentIDs = append(e.PaymentIDs, p.id)
		e.AmountsInCents = append(e.AmountsInCents, p.cents)
		e.Statuses = append(e.Statuses, p.status)
		if p.status == 3 {
			e.Paid++
		}
	}
	return e
}

// Accepted returns how many payments were created for the invoice (the
// railtest.Sim ledger).
func (s *Server) Accepted(invoice string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byInvoice[invoice])
}

// Ledger returns a snapshot of the audit ledger by invoice.
func (s *Server) Ledger() map[string]LedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]LedgerEntry, len(s.byInvoice))
	for inv, ps := range s.byInvoice {
		out[inv] = entryOf(inv, ps)
	}
	return out
}

// LedgerEntry returns one invoice's record.
func (s *Server) LedgerEntry(invoice string) (LedgerEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.byInvoice[invoice]
	if !ok {
		return LedgerEntry{}, false
	}
	return entryOf(invoice, ps), true
}

// Duplicates returns, sorted, the invoices accepted more than once: each a
// potential double payment.
func (s *Server) Duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for inv, ps := range s.byInvoice {
		if len(ps) > 1 {
			out = append(out, inv)
		}
	}
	slices.Sort(out)
	return out
}

// PaidMoreThanOnce returns, sorted, the invoices paid (status 3) more than
// once: actual double payments.
func (s *Server) PaidMoreThanOnce() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for inv, ps := range s.byInvoice {
		n := 0
		for _, p := range ps {
			if p.status == 3 {
				n++
			}
		}
		if n > 1 {
			out = append(out, inv)
		}
	}
	slices.Sort(out)
	return out
}

// Totals sums the ledger.
func (s *Server) Totals() LedgerTotals {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := LedgerTotals{Payments: len(s.payments), Invoices: len(s.byInvoice)}
	for _, p := range s.payments {
		switch p.status {
		case 3:
			t.Paid++
			t.PaidAmountInCents += p.cents
		case 4:
			t.Failed++
		case 5:
			t.Rejected++
		case 6:
			t.Cancelled++
		default:
			t.Pending++
		}
	}
	return t
}

// BalanceInCents returns the merchant's available BRL balance.
func (s *Server) BalanceInCents() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balance
}

// latest returns the last payment accepted for the invoice; s.mu is held.
func (s *Server) latest(invoice string) (*payment, error) {
	ps := s.byInvoice[invoice]
	if len(ps) == 0 {
		return nil, fmt.Errorf("weptest: no payment for invoice %q", invoice)
	}
	return ps[len(ps)-1], nil
}

// SetStatus moves the last payment of the invoice to a provider status and
// sends its webhook; its planned path stops there. status is the id ("3"),
// optionally with a status_detail code ("6:WE0001"). Any integer is taken,
// unknown ids included (railtest.Sim).
func (s *Server) SetStatus(invoice, status string) error {
	idText, code, _ := strings.Cut(status, ":")
	id, err := strconv.Atoi(idText)
	if err != nil || id <= 0 {
		return errors.New("weptest: status must be a positive integer, optionally :CODE")
	}
	var detail *Detail
	if code != "" {
		detail = &Detail{Code: code, Detail: "set by the test"}
	}
	s.mu.Lock()
	p, err := s.latest(invoice)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.setStatus(p, id, detail, s.clock.Now())
	p.nextAt = time.Time{}
	ev := s.event(p)
	s.mu.Unlock()
	s.hooks.enqueue(ev)
	return nil
}

// SignedWebhook returns the headers and body of a genuine webhook for the
// last payment of the invoice, in its current status (railtest.Sim).
func (s *Server) SignedWebhook(invoice string) (http.Header, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.latest(invoice)
	if err != nil {
		return nil, nil, err
	}
	ev := s.event(p)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("x-webhook-wp-signature", ev.signature)
	return h, ev.body, nil
}
