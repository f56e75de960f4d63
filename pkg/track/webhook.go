package track

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// WebhookPath is where Wompi posts its events (configure it in Wompi's
// dashboard as https://<host>/webhooks/wompi).
const WebhookPath = "/webhooks/wompi"

// ResultError is the webhooks_total result of an internal error (a bug,
// such as an event the codec refuses): 500.
const ResultError = "error"

// errUnmapped: a signed event names a transaction or batch that neither
// Redis nor Wompi can map to one of our requests or batches.
var errUnmapped = errors.New("track: event cannot be mapped")

// Handler serves POST /webhooks/wompi. Mount it on TRACKER_ADDR, with
// NewWebhookServer for the hardened timeouts.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+WebhookPath, e.serveWebhook)
	return mux
}

// NewWebhookServer returns the webhook listener: e.Handler behind
// ops.NewServer's timeouts (5 s to read headers, 15 s per request), so a
// slow client cannot hold connections open.
func NewWebhookServer(addr string, e *Engine) *http.Server {
	return ops.NewServer(addr, e.Handler())
}

// webhookEvent is the part of a verified webhook body the tracker reads.
type webhookEvent struct {
	Event string `json:"event"`
	Data  struct {
		Transaction *wompi.TransactionEvent `json:"transaction"`
		Payout      *wompi.PayoutEvent      `json:"payout"`
	} `json:"data"`
	Timestamp json.Number `json:"timestamp"`
}

func (e *Engine) serveWebhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	result, code := e.handleWebhook(w, r)
	e.m.webhooks.WithLabelValues(result).Inc()
	e.m.handle.Observe(time.Since(start).Seconds())
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"result\":%q}\n", result)
}

// handleWebhook returns the metric result and the HTTP status. Order of
// checks: size (413), JSON syntax (400), checksum (401), shape (400), type
// (202 if unknown), then the transition (200, or 503 so Wompi retries).
func (e *Engine) handleWebhook(w http.ResponseWriter, r *http.Request) (string, int) {
	if r.ContentLength > e.cfg.MaxBodyBytes {
		return ResultTooLarge, http.StatusRequestEntityTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ResultTooLarge, http.StatusRequestEntityTooLarge
		}
		return ResultMalformed, http.StatusBadRequest
	}
	var ev webhookEvent
	if json.Unmarshal(body, &ev) != nil { // also refuses invalid JSON
		return ResultMalformed, http.StatusBadRequest
	}
	// A webhook object that lacks its signature, timestamp or data cannot
	// be authenticated: 401, like a wrong checksum.
	if err := wompi.VerifyEvent(body, r.Header.Get(wompi.HeaderEventChecksum), e.cfg.EventsSecret); err != nil {
		e.m.sigFailures.Inc()
		reason := "checksum mismatch"
		if errors.Is(err, wompi.ErrMalformedEvent) {
			reason = "no verifiable signature"
		}
		e.log.Warn("track: webhook refused", "reason", reason, "remote", r.RemoteAddr)
		return ResultBadSig, http.StatusUnauthorized
	}
	now := e.cfg.Now()
	at := now
	if ms, ok := millis(ev.Timestamp); ok {
		at = time.UnixMilli(ms)
		if at.Sub(now) > e.cfg.FutureSkew {
			e.m.skew.Inc()
			e.log.Warn("track: webhook timestamp in the future", "event", ev.Event, "ahead", at.Sub(now).String())
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.RequestTimeout)
	defer cancel()
	var res emitted
	switch ev.Event {
	case wompi.EventTransactionUpdated:
		tx := ev.Data.Transaction
		if tx == nil || tx.ID == "" || tx.PayoutID == "" {
			return ResultMalformed, http.StatusBadRequest
		}
		res, err = e.onTransaction(ctx, tx, at)
	case wompi.EventPayoutUpdated:
		p := ev.Data.Payout
		if p == nil || p.ID == "" {
			return ResultMalformed, http.StatusBadRequest
		}
		res, err = e.onPayout(ctx, p, at)
	default:
		e.log.Info("track: unknown webhook event ignored", "event", truncate(ev.Event, 64))
		return ResultUnknownType, http.StatusAccepted
	}
	switch {
	case errors.Is(err, errUnmapped):
		e.log.Error("track: webhook cannot be mapped to a request or batch", "event", ev.Event, "err", err)
		return ResultUnmapped, http.StatusAccepted
	case errors.Is(err, errUnavailable):
		e.log.Warn("track: webhook not processed, Wompi will retry", "event", ev.Event, "err", err)
		return ResultUnavailable, http.StatusServiceUnavailable
	case err != nil:
		e.log.Error("track: webhook failed", "event", ev.Event, "err", err)
		return ResultError, http.StatusInternalServerError
	case res == emitNew:
		return ResultAccepted, http.StatusOK
	}
	return ResultDuplicate, http.StatusOK
}

// onTransaction emits the PayoutStatusChanged of a transaction.updated.
func (e *Engine) onTransaction(ctx context.Context, tx *wompi.TransactionEvent, at time.Time) (emitted, error) {
	st, ok := payout.StatusOfTransaction(payout.TransactionStatus(tx.Status))
	if !ok {
		return 0, fmt.Errorf("%w: unknown transaction status %q", errUnmapped, truncate(string(tx.Status), 32))
	}
	ref, wtx, err := e.resolveTransaction(ctx, tx.PayoutID, tx.ID)
	if err != nil {
		return 0, err
	}
	amount := tx.AmountInCents
	if amount == 0 {
		amount = ref.amount
	}
	sc := &payout.StatusChange{
		RequestID: ref.requestID, BatchID: optString(ref.batchID), PayoutID: optString(tx.PayoutID),
		TransactionID: optString(tx.ID), Status: st, AmountInCents: amount, OriginAccountID: ref.originAccountID,
		OccurredAt: at, Source: payout.SourceWebhook,
	}
	setReason(sc, tx.FailureReason)
	verified := false
	if wtx != nil { // just read from Wompi: use its status when further along
		if wst, ok := payout.StatusOfTransaction(payout.TransactionStatus(wtx.Status)); ok && payout.CanTransition(sc.Status, wst) {
			sc.Status, sc.OccurredAt = wst, e.cfg.Now()
			setReason(sc, wtx.FailureReason)
		}
		verified = true
	}
	return e.emitRequest(ctx, sc, verified, func(ctx context.Context) (payout.Status, wompi.FailureReason, error) {
		t, err := e.cfg.Wompi.PayoutTransaction(ctx, tx.PayoutID, tx.ID)
		if err != nil {
			return "", wompi.FailureReason{}, wompiErr(err)
		}
		s, ok := payout.StatusOfTransaction(payout.TransactionStatus(t.Status))
		if !ok {
			return sc.Status, wompi.FailureReason{}, nil
		}
		return s, reasonFor(s, t.FailureReason), nil
	})
}

// txRef is what the tracker knows about one Wompi transaction.
type txRef struct {
	requestID, batchID, originAccountID string
	amount                              int64
}

// resolveTransaction maps a Wompi transaction to our request: from the
// dispatcher's hand-off in Redis, else from Wompi (the transaction's
// reference is our requestId, its payout's reference our batchId). wtx is
// set when Wompi was asked.
func (e *Engine) resolveTransaction(ctx context.Context, payoutID, txID string) (txRef, *wompi.Transaction, error) {
	m, found, err := e.sub.Lookup(ctx, payoutID, txID)
	if err != nil {
		return txRef{}, nil, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	if found && m.RequestID != "" {
		return txRef{requestID: m.RequestID, batchID: m.BatchID, originAccountID: m.OriginAccountID, amount: m.AmountInCents}, nil, nil
	}
	wtx, err := e.cfg.Wompi.PayoutTransaction(ctx, payoutID, txID)
	if err != nil {
		return txRef{}, nil, wompiErr(err)
	}
	if wtx.Reference == "" {
		return txRef{}, nil, fmt.Errorf("%w: transaction %s has no reference", errUnmapped, txID)
	}
	ref := txRef{requestID: wtx.Reference, amount: wtx.AmountInCents}
	ref.batchID, ref.originAccountID, _, err = e.resolvePayout(ctx, payoutID)
	if err != nil && !errors.Is(err, errUnmapped) {
		return txRef{}, nil, err
	}
	return ref, wtx, nil
}

// resolvePayout returns a payout's batch id and origin account, from the
// hand-off or else from Wompi (wp set when Wompi was asked).
func (e *Engine) resolvePayout(ctx context.Context, payoutID string) (batchID, originAccountID string, wp *wompi.Payout, err error) {
	p, found, err := e.sub.Payout(ctx, payoutID)
	if err != nil {
		return "", "", nil, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	if found && p.BatchID != "" {
		return p.BatchID, p.OriginAccountID, nil, nil
	}
	wp, err = e.cfg.Wompi.Payout(ctx, payoutID)
	if err != nil {
		return "", "", nil, wompiErr(err)
	}
	return wp.Reference, wp.AccountID, wp, nil
}

// onPayout emits the BatchStatusChanged of a payout.updated.
func (e *Engine) onPayout(ctx context.Context, p *wompi.PayoutEvent, at time.Time) (emitted, error) {
	st := payout.BatchStatus(p.Status)
	if !st.Valid() {
		return 0, fmt.Errorf("%w: unknown batch status %q", errUnmapped, truncate(string(p.Status), 32))
	}
	sp, found, err := e.sub.Payout(ctx, p.ID)
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	batchID, origin, paymentType := p.Reference, sp.OriginAccountID, sp.PaymentType
	if batchID == "" {
		batchID = sp.BatchID
	}
	var wp *wompi.Payout
	if !found || batchID == "" {
		wp, err = e.cfg.Wompi.Payout(ctx, p.ID)
		if err != nil {
			return 0, wompiErr(err)
		}
		if batchID == "" {
			batchID = wp.Reference
		}
		origin = wp.AccountID
	}
	if batchID == "" {
		return 0, fmt.Errorf("%w: payout %s has no reference", errUnmapped, p.ID)
	}
	if paymentType == "" {
		paymentType = p.PaymentType
	}
	bc := &payout.BatchStatusChange{
		BatchID: batchID, PayoutID: optString(p.ID), OriginAccountID: origin,
		PaymentType: e.paymentType(paymentType, p.ID), Schedule: scheduleOf(p.DispersionDatetime, nil),
		Status: st, TotalAmountInCents: p.AmountInCents, TransactionCount: int32(p.TotalTransactions),
		OccurredAt: at, Source: payout.SourceWebhook,
	}
	verified := false
	if wp != nil {
		if ws := payout.BatchStatus(wp.Status); payout.CanBatchTransition(bc.Status, ws) {
			bc.Status, bc.OccurredAt = ws, e.cfg.Now()
		}
		bc.StatusMessage = optString(wp.StatusMessage)
		verified = true
	}
	return e.emitBatch(ctx, bc, verified, func(ctx context.Context) (payout.BatchStatus, error) {
		w, err := e.cfg.Wompi.Payout(ctx, p.ID)
		if err != nil {
			return "", wompiErr(err)
		}
		return payout.BatchStatus(w.Status), nil
	})
}

// paymentType maps Wompi's payment type to the Avro enum. An unknown value
// (Wompi added one) is sent as OTHER rather than losing the event.
func (e *Engine) paymentType(s, payoutID string) payout.PaymentType {
	switch pt := payout.PaymentType(s); pt {
	case payout.PaymentPayroll, payout.PaymentProviders, payout.PaymentOther:
		return pt
	}
	e.log.Warn("track: unknown payment type sent as OTHER", "payoutId", payoutID, "paymentType", truncate(s, 32))
	return payout.PaymentOther
}

func scheduleOf(dispersion string, rec *wompi.Recurring) payout.Schedule {
	var s payout.Schedule
	if dispersion != "" {
		if t, err := wompi.ParseDispersion(dispersion); err == nil {
			s.DispersionDatetime = &t
		}
	}
	if rec != nil && s.DispersionDatetime != nil {
		iv := payout.IntervalMonth
		if rec.Interval == wompi.IntervalBiweek || rec.Interval == string(payout.IntervalBiweek) {
			iv = payout.IntervalBiweek
		}
		s.Recurring = &payout.Recurring{Interval: iv, Months: int32(rec.Months), Description: optString(rec.Description)}
	}
	return s
}

// setReason carries a FAILED or CANCELLED transaction's failure code
// (D07...) and message into the event.
func setReason(sc *payout.StatusChange, fr wompi.FailureReason) {
	fr = reasonFor(sc.Status, fr)
	sc.ReasonCode, sc.ReasonMessage = optString(fr.Code), optString(fr.Message)
}

func reasonFor(st payout.Status, fr wompi.FailureReason) wompi.FailureReason {
	if st != payout.StatusFailed && st != payout.StatusCancelled {
		return wompi.FailureReason{}
	}
	return fr
}

// wompiErr classifies a Wompi failure: a 404 means the id is not Wompi's
// (unmapped); anything else may pass (unavailable: the webhook is retried,
// the poll rescheduled).
func wompiErr(err error) error {
	if wompi.IsStatus(err, http.StatusNotFound) {
		return fmt.Errorf("%w: wompi: %w", errUnmapped, err)
	}
	return fmt.Errorf("%w: wompi: %w", errUnavailable, err)
}

func millis(n json.Number) (int64, bool) {
	if n == "" {
		return 0, false
	}
	if v, err := n.Int64(); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > math.MaxInt64/2 || f < 0 {
		return 0, false
	}
	return int64(f), true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
