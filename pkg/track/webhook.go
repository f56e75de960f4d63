package track

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
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

// errForged: a validly signed event whose unsigned parts (a transaction's
// payoutId, a payout's reference) or signed amount contradict what we
// recorded at submission, or what Wompi answers: answered 401 like a wrong
// checksum, nothing produced.
var errForged = errors.New("track: event contradicts our records")

// ResultOverloaded is the webhooks_total result of a webhook refused
// because MaxConcurrentWebhooks are already being handled: 503 with
// Retry-After, so Wompi retries it.
const ResultOverloaded = "overloaded"

// Handler serves the webhooks: POST /webhooks/wompi, and POST
// /webhooks/smartfastpay and /webhooks/wepayout (single-payout rails; 404
// while the rail is not enabled in this tracker). Mount it on TRACKER_ADDR,
// with NewWebhookServer for the hardened timeouts.
func (e *Engine) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+WebhookPath, e.serveRail(rail.Wompi, e.handleWebhook))
	mux.HandleFunc("POST "+SmartFastPayWebhookPath, e.serveRail(rail.SmartFastPay, e.handleSmartFastPay))
	mux.HandleFunc("POST "+WEpayoutWebhookPath, e.serveRail(rail.WEpayout, e.handleWEpayout))
	return mux
}

// NewWebhookServer returns the webhook listener: e.Handler behind
// ops.NewServer's timeouts (5 s to read headers, 15 s per request), so a
// slow client cannot hold connections open.
func NewWebhookServer(addr string, e *Engine) *http.Server {
	return ops.NewServer(addr, e.Handler())
}

// serveRail wraps one rail's webhook handling: the rail must be enabled
// (else 404), at most MaxConcurrentWebhooks are handled at once (else 503
// with Retry-After), and every answer is counted (webhooks_total{result}
// for all rails together, as the alerts read it, and
// rail_webhooks_total{rail,result}).
func (e *Engine) serveRail(name rail.Name, handle func(http.ResponseWriter, *http.Request) (string, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var result string
		var code int
		switch {
		case !e.railEnabled(name):
			e.log.Warn("track: webhook for a rail not enabled in this tracker refused; set its credentials to track it",
				"rail", name, "remote", r.RemoteAddr)
			result, code = ResultRailNotEnabled, http.StatusNotFound
		default:
			select {
			case e.hooks <- struct{}{}:
				result, code = handle(w, r)
				<-e.hooks
			default:
				// MaxConcurrentWebhooks are being handled: refuse before
				// reading the body, so a flood costs neither memory nor the
				// poller's CPU.
				result, code = ResultOverloaded, http.StatusServiceUnavailable
				w.Header().Set("Connection", "close")
			}
		}
		e.m.webhooks.WithLabelValues(result).Inc()
		e.m.railWebhooks.WithLabelValues(string(name), result).Inc()
		e.m.handle.Observe(time.Since(start).Seconds())
		w.Header().Set("Content-Type", "application/json")
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "{\"result\":%q}\n", result)
	}
}

// readBody reads a webhook body: 413 past MaxBodyBytes, 400 unless it is a
// JSON object. ok is false when the answer is already decided.
func (e *Engine) readBody(w http.ResponseWriter, r *http.Request) (body []byte, result string, code int, ok bool) {
	if r.ContentLength > e.cfg.MaxBodyBytes {
		return nil, ResultTooLarge, http.StatusRequestEntityTooLarge, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, ResultTooLarge, http.StatusRequestEntityTooLarge, false
		}
		return nil, ResultMalformed, http.StatusBadRequest, false
	}
	if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
		return nil, ResultMalformed, http.StatusBadRequest, false
	}
	return body, "", 0, true
}

// answer turns the outcome of a signed event's handling into the metric
// result and the HTTP status, for every rail alike.
func (e *Engine) answer(r *http.Request, name rail.Name, event string, res emitted, err error) (string, int) {
	switch {
	case errors.Is(err, errForged):
		e.m.sigFailures.Inc()
		e.log.Warn("track: webhook refused", "rail", name, "reason", "contradicts our records", "event", event, "err", err, "remote", r.RemoteAddr)
		return ResultBadSig, http.StatusUnauthorized
	case errors.Is(err, errUnmapped):
		e.log.Error("track: webhook cannot be mapped to a request or batch", "rail", name, "event", event, "err", err)
		return ResultUnmapped, http.StatusAccepted
	case errors.Is(err, errUnknownStatus):
		e.log.Warn("track: webhook with a status we do not know; nothing emitted", "rail", name, "event", event, "err", err)
		return ResultUnknownType, http.StatusAccepted
	case errors.Is(err, errUnavailable):
		e.log.Warn("track: webhook not processed, the provider will retry", "rail", name, "event", event, "err", err)
		return ResultUnavailable, http.StatusServiceUnavailable
	case err != nil:
		e.log.Error("track: webhook failed", "rail", name, "event", event, "err", err)
		return ResultError, http.StatusInternalServerError
	case res == emitNew:
		return ResultAccepted, http.StatusOK
	}
	return ResultDuplicate, http.StatusOK
}

// handleWebhook returns the metric result and the HTTP status. Order of
// checks: size (413), JSON syntax (400), signature (401: wompi.ParseEvent's
// checksum, strict keys and signed fields), shape (400), type (202 if
// unknown), our records (401 if they contradict the event), then the
// transition (200, or 503 so Wompi retries).
func (e *Engine) handleWebhook(w http.ResponseWriter, r *http.Request) (string, int) {
	body, result, code, ok := e.readBody(w, r)
	if !ok {
		return result, code
	}
	// Everything below reads the event wompi.ParseEvent verified, decoded
	// from the same parse. A webhook object that lacks its signature,
	// timestamp or data, or can be read two ways, or whose signature does
	// not cover its id, status and amount, cannot be authenticated: 401,
	// like a wrong checksum.
	ev, err := wompi.ParseEvent(body, r.Header.Get(wompi.HeaderEventChecksum), e.cfg.EventsSecret)
	if err != nil {
		e.m.sigFailures.Inc()
		e.log.Warn("track: webhook refused", "reason", refusal(err), "remote", r.RemoteAddr)
		return ResultBadSig, http.StatusUnauthorized
	}
	now := e.cfg.Now()
	at := time.UnixMilli(ev.Timestamp)
	if ev.Timestamp <= 0 {
		at = now
	}
	if at.Sub(now) > e.cfg.FutureSkew {
		e.m.skew.Inc()
		e.log.Warn("track: webhook timestamp in the future", "event", ev.Event, "ahead", at.Sub(now).String())
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.RequestTimeout)
	defer cancel()
	var res emitted
	switch ev.Event {
	case wompi.EventTransactionUpdated:
		tx := ev.Transaction
		if tx == nil || tx.ID == "" || tx.PayoutID == "" {
			return ResultMalformed, http.StatusBadRequest
		}
		res, err = e.onTransaction(ctx, tx, at)
	case wompi.EventPayoutUpdated:
		p := ev.Payout
		if p == nil || p.ID == "" {
			return ResultMalformed, http.StatusBadRequest
		}
		res, err = e.onPayout(ctx, p, at)
	default:
		e.log.Info("track: unknown webhook event ignored", "event", truncate(ev.Event, 64))
		return ResultUnknownType, http.StatusAccepted
	}
	return e.answer(r, rail.Wompi, ev.Event, res, err)
}

// refusal names why wompi.ParseEvent refused a webhook, for the log.
func refusal(err error) string {
	switch {
	case errors.Is(err, wompi.ErrAmbiguousEvent):
		return "duplicate or case-variant keys"
	case errors.Is(err, wompi.ErrUnsignedField):
		return "signature does not cover the event's id, status and amount"
	case errors.Is(err, wompi.ErrSignatureTooLarge):
		return "signature over too many or too large values"
	case errors.Is(err, wompi.ErrMalformedEvent):
		return "no verifiable signature"
	}
	return "checksum mismatch"
}

// onTransaction emits the PayoutStatusChanged of a transaction.updated.
func (e *Engine) onTransaction(ctx context.Context, tx *wompi.TransactionEvent, at time.Time) (emitted, error) {
	st, ok := payout.StatusOfTransaction(payout.TransactionStatus(tx.Status))
	if !ok {
		return 0, fmt.Errorf("%w: unknown transaction status %q", errUnmapped, truncate(string(tx.Status), 32))
	}
	since, err := e.statuses.epoch(ctx) // before Wompi is read
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	ref, wtx, err := e.resolveTransaction(ctx, tx.PayoutID, tx.ID)
	if err != nil {
		return 0, err
	}
	// The amount is signed (wompi.ParseEvent), and must be the one we sent
	// (the hand-off) or, without a hand-off, the one Wompi holds.
	if tx.AmountInCents != ref.amount {
		return 0, fmt.Errorf("%w: transaction %s: amount %d, recorded %d", errForged, tx.ID, tx.AmountInCents, ref.amount)
	}
	sc := &payout.StatusChange{
		RequestID: ref.requestID, BatchID: optString(ref.batchID), PayoutID: optString(tx.PayoutID),
		TransactionID: optString(tx.ID), Status: st, AmountInCents: ref.amount, OriginAccountID: ref.originAccountID,
		OccurredAt: at, Source: payout.SourceWebhook, Rail: wompiRail(),
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
	return e.emitRequest(ctx, sc, verified, since, func(ctx context.Context) (payout.Status, wompi.FailureReason, error) {
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
//
// It also checks the pair (payoutID, txID), since a webhook's payoutId is
// not signed [doc]: the hand-off lists txID under payoutID, or Wompi
// answers GET /payouts/{payoutID}/transactions/{txID}. When Wompi does not
// know the pair but we recorded payoutID, the event is forged (errForged);
// otherwise it is not ours (errUnmapped).
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
		err = wompiErr(err)
		if errors.Is(err, errUnmapped) {
			if _, known, perr := e.sub.Payout(ctx, payoutID); perr == nil && known {
				return txRef{}, nil, fmt.Errorf("%w: transaction %s is not one of payout %s: %w", errForged, txID, payoutID, err)
			}
		}
		return txRef{}, nil, err
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
// hand-off or else from Wompi (wp set when Wompi was asked). Wompi's
// published payout has no account [sdk]: the origin comes from our
// hand-off, and is empty without it unless Wompi happens to send accountId
// (the simulator does; [ours]).
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

// onPayout emits the BatchStatusChanged of a payout.updated. The event's
// id, status and amount are signed; its reference (our batch id) and the
// rest are not, so the batch, its account, payment type and count come
// from our hand-off, else from Wompi, and a reference or amount that
// contradicts them is errForged.
func (e *Engine) onPayout(ctx context.Context, p *wompi.PayoutEvent, at time.Time) (emitted, error) {
	st := payout.BatchStatus(p.Status)
	if !st.Valid() {
		return 0, fmt.Errorf("%w: unknown batch status %q", errUnmapped, truncate(string(p.Status), 32))
	}
	since, err := e.statuses.epoch(ctx) // before Wompi is read
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	sp, found, err := e.sub.Payout(ctx, p.ID)
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	var wp *wompi.Payout
	fetch := func() error {
		if wp != nil {
			return nil
		}
		wp, err = e.cfg.Wompi.Payout(ctx, p.ID)
		if err != nil {
			return wompiErr(err)
		}
		return nil
	}
	batchID, origin, paymentType, count, amount := sp.BatchID, sp.OriginAccountID, sp.PaymentType, sp.TransactionCount, sp.TotalAmountInCents
	if !found {
		if err := fetch(); err != nil {
			return 0, err
		}
		batchID, origin, paymentType, count, amount = wp.Reference, wp.AccountID, wp.PaymentType, wp.TotalTransactions, wp.AmountInCents
	}
	if batchID == "" {
		return 0, fmt.Errorf("%w: payout %s has no reference", errUnmapped, p.ID)
	}
	if p.Reference != "" && p.Reference != batchID {
		return 0, fmt.Errorf("%w: payout %s: reference is not its batch", errForged, p.ID)
	}
	if p.AmountInCents != amount {
		// Our total may differ from Wompi's (a transaction Wompi did not
		// list at submission): Wompi's word settles it.
		if err := fetch(); err != nil {
			return 0, err
		}
		if p.AmountInCents != wp.AmountInCents {
			return 0, fmt.Errorf("%w: payout %s: amount %d, recorded %d", errForged, p.ID, p.AmountInCents, amount)
		}
	}
	if paymentType == "" {
		paymentType = p.PaymentType
	}
	dispersion := p.DispersionDatetime
	if wp != nil {
		dispersion = wp.DispersionDatetime
	}
	bc := &payout.BatchStatusChange{
		BatchID: batchID, PayoutID: optString(p.ID), OriginAccountID: origin,
		PaymentType: e.paymentType(paymentType, p.ID), Schedule: scheduleOf(dispersion, nil),
		Status: st, TotalAmountInCents: p.AmountInCents, TransactionCount: int32(count),
		OccurredAt: at, Source: payout.SourceWebhook, Rail: wompiRail(),
	}
	verified := false
	if wp != nil {
		if ws := payout.BatchStatus(wp.Status); payout.CanBatchTransition(bc.Status, ws) {
			bc.Status, bc.OccurredAt = ws, e.cfg.Now()
		}
		bc.StatusMessage = optString(wp.StatusMessage)
		verified = true
	}
	return e.emitBatch(ctx, bc, verified, since, func(ctx context.Context) (payout.BatchStatus, error) {
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
