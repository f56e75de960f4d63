package wompi

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// RailClass gives the error its rail class (rail.ClassOf reads it):
//   - a POST that may have been applied (OutcomeUnknown: a 5xx, a
//     transport failure, an unreadable answer): rail.OutcomeUnknown;
//   - EXC_008, EXC_017 and DAILY_BATCH_LIMIT: rail.Deferred;
//   - EXC_022 (the idempotency key was used: the batch exists):
//     rail.AlreadyExists;
//   - 401, 403 and 404 (credentials, permissions, base URL; a 404 on a
//     read of an id Wompi gave us is the same alarm), and a 3xx (a
//     redirect, never followed: rail.NoRedirects): rail.Unauthorized;
//   - 5xx and 429 on a read, 429 on a POST (refused before anything
//     happened), a read with no answer: rail.Retryable;
//   - 400 and 422 to a POST (validation): rail.Rejected;
//   - anything else (a 400 to a read is our own query's fault, a 409
//     without EXC_022, a 415): rail.Permanent.
func (e *Error) RailClass() rail.Class {
	switch {
	case e.OutcomeUnknown:
		return rail.OutcomeUnknown
	case e.Code == CodeInsufficientBalance, e.Code == CodeDailyLimit, e.Code == CodeDailyBatchLimit:
		return rail.Deferred
	case e.Code == CodeIdempotencyReused:
		return rail.AlreadyExists
	}
	post := e.Method == http.MethodPost
	switch s := e.HTTPStatus; {
	case s == 0 && post:
		// The client marks these OutcomeUnknown; this keeps the class safe
		// should a caller build an Error of its own.
		return rail.OutcomeUnknown
	case s == 0:
		return rail.Retryable
	case s == http.StatusUnauthorized, s == http.StatusForbidden, s == http.StatusNotFound, s >= 300 && s < 400:
		return rail.Unauthorized
	case s >= 500 && post:
		return rail.OutcomeUnknown
	case s >= 500, s == http.StatusTooManyRequests:
		return rail.Retryable
	case (s == http.StatusBadRequest || s == http.StatusUnprocessableEntity) && post:
		return rail.Rejected
	}
	return rail.Permanent
}

// RailConfig configures a Rail. Its zero value gets the defaults.
type RailConfig struct {
	// EventsSecret verifies webhooks (WOMPI_EVENTS_SECRET). Empty: every
	// webhook is refused.
	EventsSecret string
	// BanksTTL is how long a GET /banks table is used before it is read
	// again (WOMPI_BANKS_REFRESH). Default 1 h. An unknown bank code reads
	// it again at most once a minute (or once per BanksTTL, if shorter).
	BanksTTL time.Duration
	// CallTimeout bounds a GET /banks that CreateBatch starts for its bank
	// codes and that may outlive its caller (a shared read). Default: the
	// client's own HTTP timeout only. BankIDs' reads are bound by the
	// caller's rail.Background instead.
	CallTimeout time.Duration
	// Now is the clock of the bank table. Default time.Now.
	Now func() time.Time
}

// Rail is Wompi behind the rail seam: rail.BatchRail over a *Client.
// It maps Wompi's batches, transactions, statuses, errors and webhooks to
// the rail's types, and resolves the payees' bank codes to Wompi bankIds
// through a cached GET /banks (bankDirectory). Safe for concurrent use.
type Rail struct {
	c           *Client
	secret      string
	ttl         time.Duration
	now         func() time.Time
	callTimeout time.Duration
	dir         *bankDirectory
}

var (
	_ rail.BatchPayouts = (*Rail)(nil)
	_ rail.BatchRail    = (*Rail)(nil)
)

// NewRail returns Wompi's rail.BatchRail over c.
func NewRail(c *Client, cfg RailConfig) *Rail {
	if cfg.BanksTTL <= 0 {
		cfg.BanksTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Rail{c: c, secret: cfg.EventsSecret, ttl: cfg.BanksTTL, now: cfg.Now, callTimeout: cfg.CallTimeout,
		dir: &bankDirectory{c: c, ttl: cfg.BanksTTL, now: cfg.Now}}
}

// Rail returns rail.Wompi.
func (r *Rail) Rail() rail.Name { return rail.Wompi }

// railError wraps err, from a call for op, in a *rail.Error with its
// class. An error that is not an *Error was returned before anything was
// sent (ErrInvalidRequest, ErrInvalidIdempotencyKey): Permanent.
func railError(op string, err error) error {
	if err == nil {
		return nil
	}
	we, ok := AsError(err)
	if !ok {
		return &rail.Error{Rail: rail.Wompi, Op: op, Class: rail.Permanent, Err: err}
	}
	return &rail.Error{Rail: rail.Wompi, Op: op, HTTPStatus: we.HTTPStatus, Code: we.Code, Message: maskedMessage(we),
		Class: we.RailClass(), Reason: deferralReason(we.Code), Err: err}
}

// CreateBatch sends POST /payouts (see rail.BatchPayouts). A payee whose
// bank code GET /banks does not know refuses the batch before anything is
// sent: Rejected, code UNKNOWN_BANK_ID, Items naming those payees. A 400
// whose every message names a transaction ("transactions[3]....") names
// those items in Items.
func (r *Rail) CreateBatch(ctx context.Context, key string, b rail.BatchRequest) (rail.Batch, error) {
	if !ValidIdempotencyKey(key) {
		return rail.Batch{}, railError("create", ErrInvalidIdempotencyKey)
	}
	ids, err := r.bankIDs(ctx, b.Items)
	if err != nil {
		return rail.Batch{}, err
	}
	req := &CreatePayoutRequest{Reference: b.Reference, AccountID: b.OriginAccountID, PaymentType: b.PaymentType,
		DispersionDatetime: b.DispersionAt, Transactions: make([]TransactionRequest, len(b.Items))}
	if rc := b.Recurring; rc != nil {
		req.Recurring = &Recurring{Interval: strings.ToLower(rc.Interval), Months: rc.Months, Description: rc.Description}
	}
	for i, it := range b.Items {
		p := &it.Payee
		req.Transactions[i] = TransactionRequest{LegalIDType: p.LegalIDType, LegalID: p.LegalID, BankID: ids[i],
			AccountType: p.AccountType, AccountNumber: p.AccountNumber, Name: p.Name, Email: p.Email,
			Amount: it.AmountInCents, Reference: it.ID}
	}
	res, err := r.c.CreatePayout(ctx, key, req)
	if err != nil {
		re := railError("create", err).(*rail.Error)
		if re.Class == rail.Rejected {
			if we, ok := AsError(err); ok {
				re.Items = rejectedItems(we.Messages, b.Items)
			}
		}
		return rail.Batch{}, re
	}
	if res.PayoutID == "" {
		// A 2xx without a payout id: whether the batch exists is unknown.
		return rail.Batch{}, &rail.Error{Rail: rail.Wompi, Op: "create", HTTPStatus: http.StatusCreated,
			Message: "created, but the answer names no payoutId", Class: rail.OutcomeUnknown}
	}
	return rail.Batch{ProviderID: res.PayoutID, Reference: b.Reference, AmountInCents: req.TotalAmount(),
		ItemCount: res.Transactions, DispersionAt: b.DispersionAt}, nil
}

// rejectedItems maps validation messages to our ids: nil unless every
// message names a transaction by its index [ours: the simulator's
// "transactions[N].field ..." form; Wompi publishes none].
func rejectedItems(msgs []string, items []rail.BatchItem) []string {
	var out []string
	seen := map[int]bool{}
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m, "transactions[")
		if !ok {
			return nil
		}
		n, _, ok := strings.Cut(rest, "]")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i >= len(items) {
			return nil
		}
		if !seen[i] {
			seen[i] = true
			out = append(out, items[i].ID)
		}
	}
	return out
}

// bankIDs returns each item's bankId: its ProviderBankID, else its bank
// code resolved through GET /banks.
func (r *Rail) bankIDs(ctx context.Context, items []rail.BatchItem) ([]string, error) {
	ids := make([]string, len(items))
	need := false
	for i := range items {
		ids[i] = items[i].ProviderBankID
		need = need || ids[i] == ""
	}
	if !need {
		return ids, nil
	}
	table, fetched, err := r.banks(ctx, false)
	if err != nil {
		return nil, err
	}
	var unknown []string
	fill := func() {
		unknown = unknown[:0]
		for i := range items {
			if items[i].ProviderBankID == "" {
				if ids[i] = table[items[i].Payee.BankCode]; ids[i] == "" {
					unknown = append(unknown, items[i].ID)
				}
			}
		}
	}
	fill()
	if len(unknown) > 0 && !fetched && r.now().Sub(r.fetchedAt()) > min(time.Minute, r.ttl) {
		// The table may predate a new bank: read it again, once.
		if table, _, err = r.banks(ctx, true); err != nil {
			return nil, err
		}
		fill()
	}
	if len(unknown) > 0 {
		return nil, &rail.Error{Rail: rail.Wompi, Op: "create", Code: string(payout.ReasonUnknownBankID),
			Message: "GET /banks has no bankId for the payee's bank code", Class: rail.Rejected, Items: unknown}
	}
	return ids, nil
}

func (r *Rail) fetchedAt() time.Time {
	r.dir.mu.Lock()
	defer r.dir.mu.Unlock()
	return r.dir.fetched
}

// banks returns the code -> bankId table, reading GET /banks when there is
// none, when it is older than the TTL, or when force is set (joining a
// read in flight, if any); fetched says whether this call read it. A
// failed read keeps serving the last table; with none, its error is
// returned.
func (r *Rail) banks(ctx context.Context, force bool) (map[string]string, bool, error) {
	d := r.dir
	d.mu.Lock()
	table, at := d.byCode, d.fetched
	if table != nil && !force && r.now().Sub(at) < r.ttl {
		d.mu.Unlock()
		return table, false, nil
	}
	life := context.WithoutCancel(ctx)
	f := d.startLocked(rail.Background{Life: life, Timeout: r.callTimeout, Go: func(fn func()) { go fn() }})
	d.mu.Unlock()
	if err := d.await(ctx, f); err != nil {
		// Nothing was sent for the batch.
		return nil, false, &rail.Error{Rail: rail.Wompi, Op: "banks", Class: rail.Retryable, Err: err}
	}
	if f.err != nil {
		if table = d.table(); table != nil {
			return table, false, nil
		}
		return nil, false, f.err // fetch's *rail.Error
	}
	return d.table(), true, nil
}

// FindBatches returns the batches under our reference (GET
// /payouts?reference=, every page).
func (r *Rail) FindBatches(ctx context.Context, reference string) ([]rail.Batch, error) {
	ps, err := r.c.FindPayoutsByReference(ctx, reference)
	if err != nil {
		return nil, railError("find", err)
	}
	out := make([]rail.Batch, len(ps))
	for i := range ps {
		out[i] = batchOf(&ps[i])
	}
	return out, nil
}

// Items walks GET /payouts/{id}/transactions, every page.
func (r *Rail) Items(ctx context.Context, providerBatchID string) iter.Seq2[rail.Payout, error] {
	return func(yield func(rail.Payout, error) bool) {
		f := TransactionsFilter{}
		for t, err := range payoutTransactions[transactionItem](ctx, r.c, providerBatchID, f) {
			if err != nil {
				yield(rail.Payout{}, railError("items", err))
				return
			}
			if !yield(itemOf(&t), nil) {
				return
			}
		}
	}
}

// ListBatches walks GET /payouts?fromDate=, every page. fromDate is the
// Bogota day of since, so batches of that day before since come too; a
// zero since lists every batch. The listing is Frozen (a recovery's,
// while no dispatcher posts): a page announcing more batches than an
// earlier one is refused, retryably.
func (r *Rail) ListBatches(ctx context.Context, since time.Time) iter.Seq2[rail.Batch, error] {
	f := PayoutsFilter{Frozen: true}
	if !since.IsZero() {
		f.FromDate = BogotaDay(since)
	}
	return r.batches(ctx, f)
}

// batches walks GET /payouts with f, every page, mapped.
func (r *Rail) batches(ctx context.Context, f PayoutsFilter) iter.Seq2[rail.Batch, error] {
	return func(yield func(rail.Batch, error) bool) {
		for p, err := range r.c.Payouts(ctx, f) {
			if err != nil {
				yield(rail.Batch{}, railError("list", err))
				return
			}
			if !yield(batchOf(&p), nil) {
				return
			}
		}
	}
}

// VerifyWebhook verifies a webhook with ParseEvent (the X-Event-Checksum
// header, else signature.checksum) and maps it. ParseEvent's refusals
// (a wrong checksum; a body with repeated or case-variant keys; an event
// whose signature does not cover its entity's id, status and amount, or
// whose data holds another entity than its name says) are a
// *rail.WebhookError that wraps rail.ErrUnverifiedWebhook and ParseEvent's
// error, and names the refusal. Signed: the entity's id, status and
// amount, and the timestamp (SignedAt). Unsigned: the rest, among them a
// transaction's payoutId (BatchProviderID) and a payout's reference and
// paymentType; a transaction.updated carries no reference, so Item.ID is
// "". Item is set for transaction.updated only, Batch for payout.updated
// only.
func (r *Rail) VerifyWebhook(h http.Header, body []byte) (rail.BatchEvent, error) {
	ev, err := ParseEvent(body, h.Get(HeaderEventChecksum), r.secret)
	if err != nil {
		return rail.BatchEvent{}, &rail.WebhookError{Rail: rail.Wompi, Refusal: refusalOf(err), Err: err}
	}
	out := rail.BatchEvent{Name: ev.Event, SentAt: ev.SentAt.Time}
	if ev.Timestamp > 0 {
		out.SignedAt = time.UnixMilli(ev.Timestamp)
	}
	if out.SentAt.IsZero() && ev.Timestamp > 0 {
		out.SentAt = time.UnixMilli(ev.Timestamp).UTC()
	}
	switch {
	case ev.Transaction != nil:
		t := ev.Transaction
		st, _ := t.Status.PayoutStatus()
		fr := reasonOf(t.Status, t.FailureReason)
		out.Item = &rail.Payout{ProviderID: t.ID, Status: st, ProviderStatus: string(t.Status),
			Reason: fr.Code, ReasonMessage: fr.Message, AmountInCents: t.AmountInCents,
			CreatedAt: t.CreatedAt.Time, UpdatedAt: t.AppliedAt.Time}
		out.BatchProviderID = t.PayoutID
	case ev.Payout != nil:
		p := ev.Payout
		b := batchOf(&Payout{ID: p.ID, Status: p.Status, Reference: p.Reference, AmountInCents: p.AmountInCents,
			TotalTransactions: p.TotalTransactions, DispersionDatetime: p.DispersionDatetime, PaymentType: p.PaymentType,
			CreatedAt: p.CreatedAt})
		out.Batch = &b
	}
	return out, nil
}

// refusalOf names why ParseEvent refused a webhook.
func refusalOf(err error) rail.WebhookRefusal {
	switch {
	case errors.Is(err, ErrAmbiguousEvent):
		return rail.RefusedAmbiguous
	case errors.Is(err, ErrUnsignedField):
		return rail.RefusedUnsigned
	case errors.Is(err, ErrSignatureTooLarge):
		return rail.RefusedTooLarge
	case errors.Is(err, ErrMalformedEvent):
		return rail.RefusedMalformed
	}
	return rail.RefusedChecksum
}

// BatchStatusOf maps a Wompi batch status to the contract's: every known
// one maps to itself, anything else to "".
func BatchStatusOf(s BatchStatus) payout.BatchStatus {
	if st := payout.BatchStatus(s); st.Valid() {
		return st
	}
	return ""
}

// ItemStatusOf maps a Wompi transaction status to the pipeline status of
// its request (TransactionStatus.PayoutStatus); "" for one we do not know.
func ItemStatusOf(s TransactionStatus) payout.Status {
	st, _ := s.PayoutStatus()
	return st
}

func batchOf(p *Payout) rail.Batch {
	b := rail.Batch{ProviderID: p.ID, Reference: p.Reference, Status: BatchStatusOf(p.Status),
		ProviderStatus: string(p.Status), AmountInCents: p.AmountInCents, ItemCount: p.TotalTransactions,
		CreatedAt: p.CreatedAt.Time, OriginAccountID: p.AccountID, PaymentType: p.PaymentType,
		StatusMessage: maskedWords(p.StatusMessage), Recurring: recurringOf(p.Recurring)}
	if t, ok := p.Dispersion(); ok {
		b.DispersionAt = t
	}
	return b
}

// recurringOf maps Wompi's recurrence: biweek (or the contract's BIWEEK)
// is BIWEEK, any other interval MONTH.
func recurringOf(rc *Recurring) *rail.Recurring {
	if rc == nil {
		return nil
	}
	iv := payout.IntervalMonth
	if rc.Interval == IntervalBiweek || rc.Interval == string(payout.IntervalBiweek) {
		iv = payout.IntervalBiweek
	}
	return &rail.Recurring{Interval: string(iv), Months: rc.Months, Description: rc.Description}
}

func itemOf(t *transactionItem) rail.Payout {
	fr := reasonOf(t.Status, t.FailureReason)
	return rail.Payout{ProviderID: t.ID, ID: t.Reference, Status: ItemStatusOf(t.Status), ProviderStatus: string(t.Status),
		Reason: fr.Code, ReasonMessage: fr.Message, AmountInCents: t.AmountInCents,
		CreatedAt: t.CreatedAt.Time, UpdatedAt: t.AppliedAt.Time}
}

// reasonOf is the failure reason of a FAILED or CANCELLED transaction (the
// statuses that map to the pipeline's FAILED and CANCELLED): the bank's
// rejection code (D07) and its message, masked and bounded (maskClip,
// maskedWords: they go into an event), empty when Wompi gives none; empty
// for any other status.
func reasonOf(s TransactionStatus, f FailureReason) FailureReason {
	if s == TransactionFailed || s == TransactionCancelled || s == TransactionRejected {
		return FailureReason{Code: maskClip(f.Code, 64), Message: maskedWords(f.Message)}
	}
	return FailureReason{}
}
