package wompitest

import (
	"container/heap"
	"hash/fnv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Tick settles every transaction due at the clock's current time, moves
// the batches, queues the webhooks and returns how many transactions
// settled. With a ManualClock, call it after Advance; the background loop
// calls it with the real clock.
func (s *Server) Tick() int {
	now := s.clock.Now()
	var events []hookEvent
	n := 0
	s.mu.Lock()
	for len(s.due) > 0 && !s.due[0].dueAt.After(now) {
		t := heap.Pop(&s.due).(*txn)
		events = s.settle(t, now, events)
		n++
	}
	if now.Sub(s.lastPrune) > time.Minute {
		s.lastPrune = now
		for k, at := range s.idem {
			if now.Sub(at) >= s.cfg.IdempotencyTTL {
				delete(s.idem, k)
			}
		}
	}
	s.mu.Unlock()
	s.hooks.enqueue(events...)
	return n
}

// Advance moves a ManualClock by d and ticks. It panics if the clock is
// not a *ManualClock.
func (s *Server) Advance(d time.Duration) int {
	s.clock.(*ManualClock).Advance(d)
	return s.Tick()
}

// SettleAll moves a ManualClock past the last due transaction and ticks,
// so every transaction is final. It returns how many settled.
func (s *Server) SettleAll() int {
	mc := s.clock.(*ManualClock)
	s.mu.Lock()
	var last time.Time
	for _, t := range s.due {
		if t.dueAt.After(last) {
			last = t.dueAt
		}
	}
	s.mu.Unlock()
	if now := mc.Now(); last.After(now) {
		mc.Set(last)
	}
	return s.Tick()
}

// Pending returns how many transactions are not final yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.due)
}

// settle applies t's outcome; s.mu is held.
func (s *Server) settle(t *txn, now time.Time, events []hookEvent) []hookEvent {
	t.status = t.outcome
	t.updatedAt = now
	if t.status == wompi.TransactionApproved {
		t.appliedAt = now
	} else {
		// FAILED and CANCELLED give the money back to the origin account.
		acc := s.accounts[t.b.accountID]
		acc.BalanceInCents += t.w.Amount
		acc.updatedAt = now
	}
	events = append(events, s.txEvent(t, now))
	b := t.b
	b.finals++
	prev := b.status
	switch {
	case b.endStatus != "":
		// BatchOutcomes: the batch moves once, when its last
		// transaction is final.
		if b.finals == len(b.txs) {
			b.status = b.endStatus
		}
	case b.finals == len(b.txs):
		b.status = wompi.BatchTotalPayment
	default:
		b.status = wompi.BatchPartialPayment
	}
	if b.status != prev {
		b.updatedAt = now
		events = append(events, s.payoutEvent(b, now))
	}
	return events
}

// txEvent builds transaction.updated [doc]; s.mu is held. Like Wompi's, it
// carries no reference.
func (s *Server) txEvent(t *txn, now time.Time) hookEvent {
	data := map[string]any{"transaction": map[string]any{
		"id": t.id, "payoutId": t.b.id, "amountInCents": t.w.Amount, "status": string(t.status),
		"payee": map[string]any{"name": t.w.Name, "document": t.w.LegalID, "bank": t.bank.name,
			"accountType": t.w.AccountType, "accountNumber": t.w.AccountNumber, "email": t.w.Email},
		"failureReason": failureObj(t), "currency": "COP",
		"appliedAt": fmtTime(t.appliedAt), "createdAt": fmtTime(t.createdAt),
	}}
	key := t.id + "/" + string(t.status)
	return hookEvent{name: wompi.EventTransactionUpdated, data: data, at: now, props: s.props(txProps, key), key: key}
}

func failureObj(t *txn) any {
	if t.status != wompi.TransactionFailed && t.status != wompi.TransactionCancelled {
		return nil
	}
	return map[string]string{"code": t.reason.Code, "message": t.reason.Message}
}

// payoutEvent builds payout.updated [doc]; s.mu is held.
func (s *Server) payoutEvent(b *batch, now time.Time) hookEvent {
	var disp any
	if b.dispersion != "" {
		disp = b.dispersion
	}
	data := map[string]any{"payout": map[string]any{
		"id": b.id, "reference": b.reference, "amountInCents": b.amount, "paymentType": b.paymentType,
		"status": string(b.status), "totalTransactions": len(b.txs), "currency": "COP",
		"dispersionDatetime": disp, "approvedAt": fmtTime(b.createdAt), "createdAt": fmtTime(b.createdAt),
	}}
	key := b.id + "/" + string(b.status)
	return hookEvent{name: wompi.EventPayoutUpdated, data: data, at: now, props: s.props(payoutProps, key), key: key}
}

// The signed property lists. Wompi says the list can change from event to
// event [doc]; the first of each is the documented example, the others
// are [ours]: other orders and extra fields, but always the entity's id,
// status and amount, which the tracker requires a signature to cover (an
// event signed over less is refused, and polling delivers its status).
// Every listed property is present in the event's data.
var (
	txProps = [][]string{
		{"transaction.id", "transaction.status", "transaction.amountInCents"},
		{"transaction.id", "transaction.payoutId", "transaction.status", "transaction.amountInCents"},
		{"transaction.status", "transaction.id", "transaction.amountInCents", "transaction.currency"},
		{"transaction.id", "transaction.status", "transaction.amountInCents", "transaction.createdAt"},
	}
	payoutProps = [][]string{
		{"payout.id", "payout.status", "payout.amountInCents"},
		{"payout.id", "payout.reference", "payout.status", "payout.amountInCents"},
		{"payout.status", "payout.id", "payout.amountInCents", "payout.totalTransactions", "payout.currency"},
		{"payout.id", "payout.status", "payout.amountInCents", "payout.createdAt"},
	}
)

// props picks an event's property list from its key, so a run is
// reproducible; with FixedSignatureProperties it is always the first.
func (s *Server) props(lists [][]string, key string) []string {
	if s.cfg.FixedSignatureProperties {
		return lists[0]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return lists[h.Sum32()%uint32(len(lists))]
}
