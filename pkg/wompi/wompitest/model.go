package wompitest

import (
	"container/heap"
	"iter"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// wireTx is one transaction as POSTed [doc]/[sdk].
type wireTx struct {
	LegalIDType   string `json:"legalIdType"`
	LegalID       string `json:"legalId"`
	BankID        string `json:"bankId"`
	AccountType   string `json:"accountType"`
	AccountNumber string `json:"accountNumber"`
	Name          string `json:"name"`
	Email         string `json:"email"`
	Amount        int64  `json:"amount"`
	Reference     string `json:"reference"`
	PersonType    string `json:"personType"`
	Phone         string `json:"phone"`
	Description   string `json:"description"`
}

type wireRecurring struct {
	Interval    string `json:"interval"`
	Months      int    `json:"months"`
	Description string `json:"description,omitempty"`
}

// wireCreate is the body of POST /payouts [doc].
type wireCreate struct {
	Reference          string         `json:"reference"`
	AccountID          string         `json:"accountId"`
	PaymentType        string         `json:"paymentType"`
	DispersionDatetime *string        `json:"dispersionDatetime"`
	Recurring          *wireRecurring `json:"recurring"`
	TransactionStatus  string         `json:"transactionStatus"`
	Transactions       []wireTx       `json:"transactions"`
}

type batch struct {
	id          string
	reference   string
	accountID   string
	paymentType string
	dispersion  string    // as sent, "" for immediate
	dispAt      time.Time // parsed dispersion, zero for immediate
	recurring   *wireRecurring
	forced      string
	source      string // "json" or "file"
	idemKey     string
	day         string // Bogota day its amount counts on (the dispersion day)
	slotDay     string // Bogota day its batch slot counts on (the day it was sent)
	amount      int64
	txs         []*txn
	finals      int
	endStatus   wompi.BatchStatus // BatchOutcomes: the status it ends in, "" for the normal flow
	status      wompi.BatchStatus
	createdAt   time.Time
	updatedAt   time.Time
}

type txn struct {
	id        string
	b         *batch
	w         wireTx
	bank      *bankEntry
	status    wompi.TransactionStatus
	outcome   wompi.TransactionStatus // decided at creation, applied when due
	reason    FailureRule             // for FAILED / CANCELLED outcomes
	dueAt     time.Time
	order     uint64
	createdAt time.Time
	appliedAt time.Time
	updatedAt time.Time
	index     int // heap index
	// sameRef is the next transaction accepted with the same reference
	// (Server.byTxRef holds the first): a chain, since a reference is
	// almost always accepted once.
	sameRef *txn
}

// acceptances yields t, the first transaction accepted with its reference
// (byTxRef), then every later one, in acceptance order.
func (t *txn) acceptances() iter.Seq[*txn] {
	return func(yield func(*txn) bool) {
		for x := t; x != nil; x = x.sameRef {
			if !yield(x) {
				return
			}
		}
	}
}

// dueHeap orders pending transactions by due time, then creation order.
type dueHeap []*txn

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if !h[i].dueAt.Equal(h[j].dueAt) {
		return h[i].dueAt.Before(h[j].dueAt)
	}
	return h[i].order < h[j].order
}
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	t := x.(*txn)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	t.index = -1
	return t
}

var _ heap.Interface = (*dueHeap)(nil)

// payoutView is a batch on the wire [sdk]; accountId and recurring are
// [ours].
type payoutView struct {
	ID                 string         `json:"id"`
	Status             string         `json:"status"`
	Reference          string         `json:"reference"`
	AmountInCents      int64          `json:"amountInCents"`
	Currency           string         `json:"currency"`
	TotalTransactions  int            `json:"totalTransactions"`
	DispersionDatetime *string        `json:"dispersionDatetime"`
	PaymentType        string         `json:"paymentType"`
	StatusMessage      string         `json:"statusMessage"`
	AccountID          string         `json:"accountId,omitempty"` // [ours]
	Recurring          *wireRecurring `json:"recurring,omitempty"` // [ours]
	ApprovedAt         *string        `json:"approvedAt"`
	CreatedAt          *string        `json:"createdAt"`
	UpdatedAt          *string        `json:"updatedAt"`
}

type payeeInfoView struct {
	Bank          string `json:"bank"`
	BankCode      string `json:"bankCode"`
	Name          string `json:"name"`
	Email         string `json:"email"`
	LegalID       string `json:"legalId"`
	LegalIDType   string `json:"legalIdType"`
	AccountType   string `json:"accountType"`
	AccountNumber string `json:"accountNumber"`
}

// txView is a transaction on the wire [sdk]; failureReason is a string
// "D07: message" [sdk: a string], payoutId is [ours].
type txView struct {
	ID            string        `json:"id"`
	PayoutID      string        `json:"payoutId,omitempty"` // [ours]
	Status        string        `json:"status"`
	AmountInCents int64         `json:"amountInCents"`
	Reference     string        `json:"reference"`
	PayeeInfo     payeeInfoView `json:"payeeInfo"`
	FailureReason *string       `json:"failureReason"`
	AppliedAt     *string       `json:"appliedAt"`
	CreatedAt     *string       `json:"createdAt"`
}

func statusMessage(b *batch) string {
	switch b.status {
	case wompi.BatchPending:
		if !b.dispAt.IsZero() {
			return "Scheduled"
		}
		return "In process"
	case wompi.BatchPartialPayment:
		return "Partially paid"
	case wompi.BatchTotalPayment:
		return "Processed"
	case wompi.BatchRejected:
		return "Rejected"
	case wompi.BatchNotApproved:
		return "Not approved"
	case wompi.BatchAFEOnHold:
		return "On hold by the anti-fraud engine"
	case wompi.BatchAFERejected:
		return "Rejected by the anti-fraud engine"
	}
	return ""
}

// viewPayout must be called with s.mu held.
func (s *Server) viewPayout(b *batch) payoutView {
	v := viewPayout(b)
	if s.cfg.PublishedOnly {
		v.AccountID, v.Recurring = "", nil
	}
	return v
}

// viewTx must be called with s.mu held.
func (s *Server) viewTx(t *txn) txView {
	v := viewTx(t)
	if s.cfg.PublishedOnly {
		v.PayoutID = ""
	}
	return v
}

func viewPayout(b *batch) payoutView {
	v := payoutView{
		ID: b.id, Status: string(b.status), Reference: b.reference, AmountInCents: b.amount, Currency: "COP",
		TotalTransactions: len(b.txs), PaymentType: b.paymentType, StatusMessage: statusMessage(b),
		AccountID: b.accountID, Recurring: b.recurring,
		ApprovedAt: fmtTime(b.createdAt), CreatedAt: fmtTime(b.createdAt), UpdatedAt: fmtTime(b.updatedAt),
	}
	if b.dispersion != "" {
		d := b.dispersion
		v.DispersionDatetime = &d
	}
	return v
}

func viewTx(t *txn) txView {
	v := txView{
		ID: t.id, PayoutID: t.b.id, Status: string(t.status), AmountInCents: t.w.Amount, Reference: t.w.Reference,
		PayeeInfo: payeeInfoView{Bank: t.bank.name, BankCode: t.bank.code, Name: t.w.Name, Email: t.w.Email,
			LegalID: t.w.LegalID, LegalIDType: t.w.LegalIDType, AccountType: t.w.AccountType, AccountNumber: t.w.AccountNumber},
		AppliedAt: fmtTime(t.appliedAt), CreatedAt: fmtTime(t.createdAt),
	}
	if t.status == wompi.TransactionFailed || t.status == wompi.TransactionCancelled {
		r := t.reason.Message
		if t.reason.Code != "" {
			r = t.reason.Code + ": " + t.reason.Message
		}
		v.FailureReason = &r
	}
	return v
}
