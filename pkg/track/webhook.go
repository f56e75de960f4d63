package track

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
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
// checks: size (413), JSON syntax (400), signature (401: the rail's
// VerifyWebhook; on Wompi, wompi.ParseEvent's checksum, strict keys and
// signed fields), shape (400), type (202 if unknown), our records (401 if
// they contradict the event), then the transition (200, or 503 so Wompi
// retries).
func (e *Engine) handleWebhook(w http.ResponseWriter, r *http.Request) (string, int) {
	body, result, code, ok := e.readBody(w, r)
	if !ok {
		return result, code
	}
	// Everything below reads the event VerifyWebhook verified, decoded
	// from the same parse. A webhook object that lacks its signature,
	// timestamp or data, or can be read two ways, or whose signature does
	// not cover its id, status and amount, cannot be authenticated: 401,
	// like a wrong checksum.
	ev, err := e.cfg.Wompi.VerifyWebhook(r.Header, body)
	if err != nil {
		e.m.sigFailures.Inc()
		e.log.Warn("track: webhook refused", "reason", refusal(err), "remote", r.RemoteAddr)
		return ResultBadSig, http.StatusUnauthorized
	}
	now := e.cfg.Now()
	at := ev.SignedAt
	if at.IsZero() {
		at = now
	}
	if at.Sub(now) > e.cfg.FutureSkew {
		e.m.skew.Inc()
		e.log.Warn("track: webhook timestamp in the future", "event", ev.Name, "ahead", at.Sub(now).String())
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.RequestTimeout)
	defer cancel()
	var res emitted
	switch {
	case ev.Item != nil:
		tx := ev.Item
		if tx.ProviderID == "" || ev.BatchProviderID == "" {
			return ResultMalformed, http.StatusBadRequest
		}
		res, err = e.onTransaction(ctx, ev.BatchProviderID, tx, at)
	case ev.Batch != nil:
		p := ev.Batch
		if p.ProviderID == "" {
			return ResultMalformed, http.StatusBadRequest
		}
		res, err = e.onPayout(ctx, p, at)
	default:
		e.log.Info("track: unknown webhook event ignored", "event", truncate(ev.Name, 64))
		return ResultUnknownType, http.StatusAccepted
	}
	return e.answer(r, rail.Wompi, ev.Name, res, err)
}

// refusal names why VerifyWebhook refused a webhook, for the log.
func refusal(err error) string {
	if why := rail.RefusalOf(err); why != "" {
		return string(why)
	}
	return string(rail.RefusedChecksum)
}

// onTransaction emits the PayoutStatusChanged of a transaction.updated:
// tx is its transaction, payoutID the payout the event names (unsigned).
func (e *Engine) onTransaction(ctx context.Context, payoutID string, tx *rail.Payout, at time.Time) (emitted, error) {
	st := tx.Status
	reads := e.statuses.epochReads.Load() // before the emission: see enrollBatch
	since, err := e.statuses.epoch(ctx)   // before Wompi is read
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	ref, wtx, err := e.resolveTransaction(ctx, payoutID, tx.ProviderID)
	if err != nil {
		return 0, err
	}
	// The amount is signed (VerifyWebhook), and must be the one we sent
	// (the hand-off) or, without a hand-off, the one Wompi holds.
	if tx.AmountInCents != ref.amount {
		return 0, fmt.Errorf("%w: transaction %s: amount %d, recorded %d", errForged, tx.ProviderID, tx.AmountInCents, ref.amount)
	}
	if st == "" {
		if wtx != nil { // no hand-off maps it; Wompi answered the pair
			if err := e.enrollBatch(ctx, payoutID, reads); err != nil {
				return 0, err
			}
		}
		return 0, fmt.Errorf("%w: unknown transaction status %q", errUnmapped, truncate(tx.ProviderStatus, 32))
	}
	sc := &payout.StatusChange{
		RequestID: ref.requestID, BatchID: payout.OptString(ref.batchID), PayoutID: payout.OptString(payoutID),
		TransactionID: payout.OptString(tx.ProviderID), Status: st, AmountInCents: ref.amount, OriginAccountID: ref.originAccountID,
		OccurredAt: at, Source: payout.SourceWebhook, Rail: wompiRail(),
	}
	setReason(sc, failureOf(tx))
	verified := false
	if wtx != nil { // just read from Wompi: use its status when further along
		if wst := wtx.Status; wst != "" && payout.Beyond(sc.Status, wst) {
			sc.Status, sc.OccurredAt = wst, e.cfg.Now()
			setReason(sc, failureOf(wtx))
		}
		verified = true
		if other, err := e.followsOther(ctx, &adoptedBatch{payoutID: payoutID, batchID: ref.batchID},
			sc.RequestID, tx.ProviderID, sc.Status, ref.born); err != nil || other != noOther {
			if err == nil {
				err = e.enrollBatch(ctx, payoutID, reads)
			}
			return emitDuplicate, err
		}
	} else if other, err := e.adoptedTxFailure(ctx, &adoptedBatch{payoutID: payoutID, batchID: ref.batchID},
		sc.RequestID, tx.ProviderID, sc.Status); err != nil || other != noOther {
		if err == nil && other == otherMayPay {
			// The adopted payout stays polled until the failure is
			// emitted or the request follows the other payout.
			err = e.enrollBatch(ctx, payoutID, reads)
		}
		return emitDuplicate, err
	}
	res, err := e.emitRequest(ctx, sc, verified, since, func(ctx context.Context) (payout.Status, failure, error) {
		t, err := e.cfg.Wompi.Item(ctx, payoutID, tx.ProviderID)
		if err != nil {
			return "", failure{}, wompiErr(err)
		}
		if t.Status == "" {
			return sc.Status, failure{}, nil
		}
		return t.Status, reasonFor(t.Status, failureOf(&t)), nil
	})
	if wtx != nil { // no hand-off maps it; Wompi answered the pair
		// After the emission, whose begin on a key a Redis loss emptied
		// read the epoch marker anew (checkEpoch): enrollBatch's memory
		// of the payout then no longer counts.
		if eerr := e.enrollBatch(ctx, payoutID, reads); eerr != nil {
			return 0, eerr
		}
	}
	return res, err
}

// txRef is what the tracker knows about one Wompi transaction.
type txRef struct {
	requestID, batchID, originAccountID string
	amount                              int64
	born                                time.Time // without a hand-off: the payout's creation, as Wompi holds it
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
func (e *Engine) resolveTransaction(ctx context.Context, payoutID, txID string) (txRef, *rail.Payout, error) {
	m, found, err := e.sub.Lookup(ctx, payoutID, txID)
	if err != nil {
		return txRef{}, nil, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	if found && m.RequestID != "" {
		return txRef{requestID: m.RequestID, batchID: m.BatchID, originAccountID: m.OriginAccountID, amount: m.AmountInCents}, nil, nil
	}
	item, err := e.cfg.Wompi.Item(ctx, payoutID, txID)
	if err != nil {
		err = wompiErr(err)
		if errors.Is(err, errUnmapped) {
			if _, known, perr := e.sub.Payout(ctx, payoutID); perr == nil && known {
				return txRef{}, nil, fmt.Errorf("%w: transaction %s is not one of payout %s: %w", errForged, txID, payoutID, err)
			}
		}
		return txRef{}, nil, err
	}
	if item.ID == "" {
		return txRef{}, nil, fmt.Errorf("%w: transaction %s has no reference", errUnmapped, txID)
	}
	ref := txRef{requestID: item.ID, amount: item.AmountInCents, born: item.CreatedAt}
	var b *rail.Batch
	ref.batchID, ref.originAccountID, b, err = e.resolvePayout(ctx, payoutID)
	if err != nil && !errors.Is(err, errUnmapped) {
		return txRef{}, nil, err
	}
	if b != nil && b.CreatedAt.Unix() > 0 {
		ref.born = b.CreatedAt
	}
	return ref, &item, nil
}

// followsOther reports whether st, a failure of a Wompi transaction txID
// that no hand-off maps, must not be emitted for requestID: the request's
// status key follows another transaction whose life has not ended in a
// FAILED or a CANCELLED (after which a new transaction restarts it,
// requestRestart). That one is the transaction the dispatcher adopted: a
// POST whose answer was lost, then a lookup behind the create, leave Wompi
// with two payouts under one reference, and only the adopted one is handed
// off. Emitted, the other one's FAILED would end the request while the
// adopted one pays, whose APPROVED then follows as a new life: the
// marketplace, which asks again on a FAILED, pays the payee twice (a
// RETURNED would likewise follow the adopted one's APPROVED). The
// request's statuses follow the adopted transaction; the other payout
// stays polled until it ends (otherFollowed). A FAILED or CANCELLED in
// the key restarts the request, unless Wompi's lookup by a's reference
// (a is the payout of txID) lists its transaction in another payout:
// then it ended this same life (the adopted transaction's failure,
// emitted once the lookup listed this one failed too), and this failure
// would be a second FAILED (otherFollowed).
//
// While the key holds no status of any transaction (none yet, or a
// DEFERRED), a failure of a payout born (created) less than handOffWait
// ago is kept back too (otherMayPay), as the single rails' failureOfOther
// does: the answer to its POST lost, the dispatcher's lookup by reference
// served behind may miss it and post another payout, whose SUBMITTED and
// APPROVED would follow this FAILED as a new life (paid twice). The
// payout stays polled: its hand-off (adoptedTxFailure decides), the other
// one's status in the key (otherFollowed) or its age ends the wait.
func (e *Engine) followsOther(ctx context.Context, a *adoptedBatch, requestID, txID string, st payout.Status, born time.Time) (otherPayout, error) {
	switch st {
	case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected, payout.StatusReturned:
	default:
		return noOther, nil
	}
	v, err := readStatusKey(ctx, e.statuses.rdb, e.statuses.key(kindRequest, requestID))
	if err != nil {
		return noOther, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	cur, tx := v.st, v.tx
	if cur == "" {
		cur, tx = v.fl, v.flx
	}
	if tx == "" && !payout.Status(cur).Final() && st != payout.StatusReturned {
		if wait, err := e.awaitsHandOff(ctx, rail.Payout{CreatedAt: born}); err != nil {
			return noOther, fmt.Errorf("request %s: %w", requestID, err)
		} else if wait {
			e.log.Error("track: a failure of a Wompi transaction not handed off is not emitted yet: the request has no status of any transaction, and the dispatcher may still post another; the payout stays watched",
				"request_id", requestID, "transaction", truncate(txID, 40), "status", st)
			e.m.failuresHeld.WithLabelValues(string(rail.Wompi)).Inc()
			return otherMayPay, nil
		}
	}
	if tx == "" && st != payout.StatusReturned && a.batchID != "" {
		// No status of any transaction, and no hand-off awaited (the
		// payout older than handOffWait, or a Redis loss took its hand-off
		// and the key since it was made). Another payout under
		// the batch's reference (the batch posted twice) whose transaction
		// of the request is paid or may still pay keeps this failure back,
		// as adoptedTxFailure does for the adopted one: emitted, the
		// other's APPROVED would follow it as a new life. One lookup per
		// poll or webhook of a failure without hand-off (a rare path).
		if err := e.readAdopted(ctx, a); err != nil {
			return noOther, err
		}
		for _, o := range a.others[requestID] {
			switch p := o.tx; {
			case p.ProviderID == "" || p.ProviderID == txID:
			case p.Status == payout.StatusFailed, p.Status == payout.StatusCancelled, p.Status == payout.StatusRejected, p.Status == payout.StatusReturned:
			default:
				e.log.Error("track: a failure of a Wompi transaction not handed off is not emitted yet: another payout under the batch's reference may still pay; both stay watched",
					"request_id", requestID, "transaction", truncate(txID, 40), "status", st,
					"other_payout", o.payoutID, "other", truncate(p.ProviderID, 40), "other_status", p.Status)
				if err := e.sub.Schedule(ctx, o.payoutID, e.cfg.Now().Add(FirstPollInterval)); err != nil {
					return noOther, fmt.Errorf("%w: redis: schedule %s: %w", errUnavailable, o.payoutID, err)
				}
				e.m.failuresHeld.WithLabelValues(string(rail.Wompi)).Inc()
				return otherMayPay, nil
			}
		}
	}
	if cur == "" || tx == "" || tx == txID {
		return noOther, nil
	}
	switch payout.Status(cur) {
	case payout.StatusFailed, payout.StatusCancelled:
		if a.batchID == "" {
			return noOther, nil
		}
		if err := e.readAdopted(ctx, a); err != nil {
			return noOther, err
		}
		if !slices.ContainsFunc(a.others[requestID], func(o otherTx) bool { return o.tx.ProviderID == tx }) {
			return noOther, nil // an earlier life's: this transaction restarts the request
		}
		e.log.Error("track: a failure of a Wompi transaction not handed off is not emitted: another payout under the batch's reference ended the request",
			"request_id", requestID, "transaction", truncate(txID, 40), "status", st, "known", cur)
		return otherFollowed, nil
	}
	e.log.Error("track: a failure of a Wompi transaction not handed off is not emitted: the request follows another transaction",
		"request_id", requestID, "transaction", truncate(txID, 40), "status", st, "known", cur)
	return otherFollowed, nil
}

// adoptedBatch is what a failure of a Wompi transaction a hand-off maps
// (the one the dispatcher adopted) is judged against: Wompi's lookup by
// the batch's reference (FindBatches), read at most once per webhook or
// poll, and only for a failure not emitted yet. followsOther uses it for
// a payout not handed off too (payoutID is then that payout).
type adoptedBatch struct {
	payoutID, batchID string
	read              bool
	// listed: the lookup lists the adopted payout, and every payout under
	// the reference with its id (else it is behind: nothing is proved).
	listed bool
	born   time.Time // the adopted payout's creation
	// others are the transactions of the other payouts under the
	// reference, by our requestId.
	others map[string][]otherTx
}

// otherTx is a transaction of another payout under the batch's reference.
type otherTx struct {
	payoutID string
	tx       rail.Payout
}

// adoptedTxFailure reports whether st, a failure of transaction txID of the
// Wompi payout the dispatcher adopted (a.payoutID, handed off), must not
// be emitted for requestID yet: Wompi's lookup by the batch's reference
// lists another payout whose transaction of the request is paid or may
// still pay. The dispatcher posts only after a lookup that found nothing,
// but a lookup served from a copy behind may have missed an earlier
// payout (the answer to its POST lost): it was not adopted, and it pays.
// Emitted, the adopted transaction's FAILED would end the request while
// that one pays; its APPROVED then follows as a new life (requestRestart),
// and the marketplace, which asks again on a FAILED, pays the payee twice.
// Kept back (otherMayPay), the adopted payout stays polled and the other
// is put on the schedule (its webhooks, without hand-off, may be lost):
// once the request's status key follows the other transaction (its status
// emitted), the failure is not emitted (otherFollowed); once the lookup
// lists no other transaction that may pay, it is (the other one's own
// failure is not emitted while the key follows the adopted one:
// followsOther). A lookup that does not list the adopted payout (behind
// its create) holds the failure too. As the single rails' adoptedFailure:
// another transaction that ended before the adopted payout was created,
// and was created itself more than half of DEDUPE_WINDOW before it (an
// earlier life's), does not count. A failure the key already holds for
// txID (emitted) asks nothing: the lookup is made once per failure, never
// per success.
func (e *Engine) adoptedTxFailure(ctx context.Context, a *adoptedBatch, requestID, txID string, st payout.Status) (otherPayout, error) {
	switch st {
	case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected:
	default:
		return noOther, nil
	}
	if a.batchID == "" {
		return noOther, nil
	}
	v, err := readStatusKey(ctx, e.statuses.rdb, e.statuses.key(kindRequest, requestID))
	if err != nil {
		return noOther, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	if v.st == string(st) && v.tx == txID {
		return noOther, nil // emitted already
	}
	if err := e.readAdopted(ctx, a); err != nil {
		return noOther, err
	}
	if !a.listed {
		e.log.Error("track: a failure of the adopted Wompi transaction is not emitted yet: the lookup by reference does not list its payout (behind); the payout stays watched",
			"request_id", requestID, "transaction", truncate(txID, 40), "payoutId", a.payoutID, "status", st)
		e.m.failuresHeld.WithLabelValues(string(rail.Wompi)).Inc()
		return otherMayPay, nil
	}
	for _, o := range a.others[requestID] {
		p := o.tx
		if p.ProviderID == "" || p.ProviderID == txID {
			continue
		}
		switch p.Status {
		case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected, payout.StatusReturned:
			continue
		}
		if p.Status != "" && p.Status.Final() && a.born.Unix() > 0 && p.UpdatedAt.Unix() > 0 && !p.UpdatedAt.After(a.born) &&
			p.CreatedAt.Unix() > 0 && p.CreatedAt.Before(a.born.Add(-e.cfg.DedupeWindow/2)) {
			continue // ended before the adopted payout was made, and made long before it: an earlier life's
		}
		if cmp.Or(v.tx, v.flx) == p.ProviderID {
			return otherFollowed, nil
		}
		e.log.Error("track: a failure of the adopted Wompi transaction is not emitted yet: another payout under the batch's reference may still pay; both stay watched",
			"request_id", requestID, "transaction", truncate(txID, 40), "status", st,
			"other_payout", o.payoutID, "other", truncate(p.ProviderID, 40), "other_status", p.Status)
		if err := e.sub.Schedule(ctx, o.payoutID, e.cfg.Now().Add(FirstPollInterval)); err != nil {
			return noOther, fmt.Errorf("%w: redis: schedule %s: %w", errUnavailable, o.payoutID, err)
		}
		e.m.failuresHeld.WithLabelValues(string(rail.Wompi)).Inc()
		return otherMayPay, nil
	}
	return noOther, nil
}

// readAdopted reads a's lookup by reference once: the payouts under the
// batch's reference, and the transactions of those other than the adopted
// one (usually none: one GET). A failed read is errUnavailable (the
// webhook is retried, the poll rescheduled), a 404 included.
func (e *Engine) readAdopted(ctx context.Context, a *adoptedBatch) error {
	if a.read {
		return nil
	}
	bs, err := e.cfg.Wompi.FindBatches(ctx, a.batchID)
	if err != nil {
		return fmt.Errorf("%w: wompi: %w", errUnavailable, err)
	}
	listed, others := false, map[string][]otherTx{}
	for _, b := range bs {
		switch b.ProviderID {
		case a.payoutID:
			listed, a.born = true, b.CreatedAt
			continue
		case "":
			// A payout listed without its id, whose transactions cannot
			// be read: nothing is proved (as the dispatcher's lookup).
			a.read, a.listed = true, false
			return nil
		}
		for p, err := range e.cfg.Wompi.Items(ctx, b.ProviderID) {
			if err != nil {
				return fmt.Errorf("%w: wompi: %w", errUnavailable, err)
			}
			if p.ID != "" {
				others[p.ID] = append(others[p.ID], otherTx{payoutID: b.ProviderID, tx: p})
			}
		}
	}
	a.read, a.listed, a.others = true, listed, others
	return nil
}

// resolvePayout returns a payout's batch id and origin account, from the
// hand-off or else from Wompi (wp set when Wompi was asked). Wompi's
// published payout has no account [sdk]: the origin comes from our
// hand-off, and is empty without it unless Wompi happens to send accountId
// (the simulator does; [ours]).
func (e *Engine) resolvePayout(ctx context.Context, payoutID string) (batchID, originAccountID string, wp *rail.Batch, err error) {
	p, found, err := e.sub.Payout(ctx, payoutID)
	if err != nil {
		return "", "", nil, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	if found && p.BatchID != "" {
		return p.BatchID, p.OriginAccountID, nil, nil
	}
	b, err := e.cfg.Wompi.GetBatch(ctx, payoutID)
	if err != nil {
		return "", "", nil, wompiErr(err)
	}
	return b.Reference, b.OriginAccountID, &b, nil
}

// onPayout emits the BatchStatusChanged of a payout.updated. The event's
// id, status and amount are signed; its reference (our batch id) and the
// rest are not, so the batch, its account, payment type and count come
// from our hand-off, else from Wompi, and a reference or amount that
// contradicts them is errForged.
func (e *Engine) onPayout(ctx context.Context, p *rail.Batch, at time.Time) (emitted, error) {
	st := p.Status
	reads := e.statuses.epochReads.Load() // before the emission: see enrollBatch
	since, err := e.statuses.epoch(ctx)   // before Wompi is read
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	sp, found, err := e.sub.Payout(ctx, p.ProviderID)
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	var wp *rail.Batch
	fetch := func() error {
		if wp != nil {
			return nil
		}
		b, err := e.cfg.Wompi.GetBatch(ctx, p.ProviderID)
		if err != nil {
			return wompiErr(err)
		}
		wp = &b
		return nil
	}
	batchID, origin, paymentType, count, amount := sp.BatchID, sp.OriginAccountID, sp.PaymentType, sp.TransactionCount, sp.TotalAmountInCents
	if !found {
		if err := fetch(); err != nil {
			return 0, err
		}
		batchID, origin, paymentType, count, amount = wp.Reference, wp.OriginAccountID, wp.PaymentType, wp.ItemCount, wp.AmountInCents
	}
	// Without a hand-off, the payout goes on the polling schedule once its
	// event is handled (enrollBatch: after the emission, which sees a Redis
	// loss that took the schedule entry).
	enroll := func(res emitted, err error) (emitted, error) {
		if !found {
			if eerr := e.enrollBatch(ctx, p.ProviderID, reads); eerr != nil {
				return 0, eerr
			}
		}
		return res, err
	}
	if !st.Valid() {
		return enroll(0, fmt.Errorf("%w: unknown batch status %q", errUnmapped, truncate(p.ProviderStatus, 32)))
	}
	if batchID == "" {
		return 0, fmt.Errorf("%w: payout %s has no reference", errUnmapped, p.ProviderID)
	}
	if p.Reference != "" && p.Reference != batchID {
		return 0, fmt.Errorf("%w: payout %s: reference is not its batch", errForged, p.ProviderID)
	}
	if p.AmountInCents != amount {
		// Our total may differ from Wompi's (a transaction Wompi did not
		// list at submission): Wompi's word settles it.
		if err := fetch(); err != nil {
			return 0, err
		}
		if p.AmountInCents != wp.AmountInCents {
			return 0, fmt.Errorf("%w: payout %s: amount %d, recorded %d", errForged, p.ProviderID, p.AmountInCents, amount)
		}
	}
	if paymentType == "" {
		paymentType = p.PaymentType
	}
	dispersion := p.DispersionAt
	if wp != nil {
		dispersion = wp.DispersionAt
	}
	bc := &payout.BatchStatusChange{
		BatchID: batchID, PayoutID: payout.OptString(p.ProviderID), OriginAccountID: origin,
		PaymentType: e.paymentType(paymentType, p.ProviderID), Schedule: scheduleOf(dispersion, nil),
		Status: st, TotalAmountInCents: p.AmountInCents, TransactionCount: int32(count),
		OccurredAt: at, Source: payout.SourceWebhook, Rail: wompiRail(),
	}
	verified := false
	if wp != nil {
		if ws := wp.Status; payout.BatchBeyond(bc.Status, ws) {
			bc.Status, bc.OccurredAt = ws, e.cfg.Now()
		}
		bc.StatusMessage = payout.OptString(wp.StatusMessage)
		verified = true
	}
	return enroll(e.emitBatch(ctx, bc, verified, since, func(ctx context.Context) (payout.BatchStatus, error) {
		w, err := e.cfg.Wompi.GetBatch(ctx, p.ProviderID)
		if err != nil {
			return "", wompiErr(err)
		}
		return w.Status, nil
	}))
}

// enrollBatch puts a Wompi payout whose webhook no hand-off maps (lost
// with Redis or expired, and perhaps left off a rebuild whose listing was
// behind the create) on the polling schedule, whatever the event's status:
// the sweep puts back only payouts the hand-off records, and no rebuild
// runs while the schedule's marker stands, so with its later webhooks lost
// its requests would stall. Wompi answered the payout (or the pair) first.
// It is due FirstPollInterval from now, as the dispatcher's hand-off
// schedules a new payout (the webhooks of a new batch usually come before
// it; due now, each new batch was polled once more, every transaction
// listed); its poll takes it off once the batch and every transaction are
// final. A
// failure to schedule it is errUnavailable: the webhook is answered 503,
// so that Wompi sends it again rather than leave the payout on no schedule.
//
// A webhook usually comes before the dispatcher's hand-off (which puts the
// payout on the schedule too), once per transaction of the batch: a payout
// this process enrolled within enrollMemory, under the status epoch marker
// it still sees, is not written again, which spares a Redis round trip per
// transaction of a new batch. Its callers enroll after the emission, whose
// begin on a key a Redis loss emptied reads the marker anew: a webhook
// after a loss that took the entry writes it again, rather than leave the
// payout unpolled when a rebuild's listing was behind the create. The
// memory counts only once the marker was read from Redis since the webhook
// came (reads: the store's epochReads then): a webhook that is a duplicate
// here (another replica emitted its status after the loss, then failed its
// own enroll and answered 503) reads no marker, and the one cached may
// predate the loss.
func (e *Engine) enrollBatch(ctx context.Context, payoutID string, reads uint64) error {
	now := e.cfg.Now()
	// The memory holds only under the epoch marker it was written under:
	// a Redis loss since took the schedule entry with it. The count first:
	// a read it shows is in the marker taken after it.
	seen := e.statuses.epochReads.Load() != reads
	epoch, err := e.statuses.epoch(ctx)
	if err != nil {
		return fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	// On a Redis Cluster the schedule's master can lose its data alone,
	// under a marker that stays: no memory there.
	if seen && !e.statuses.onCluster() && e.enrolled.has(payoutID, epoch, now) {
		return nil
	}
	if err := e.sub.Schedule(ctx, payoutID, now.Add(FirstPollInterval)); err != nil {
		e.log.Warn("track: schedule a Wompi payout without hand-off", "payoutId", payoutID, "err", err)
		return fmt.Errorf("%w: redis: schedule %s: %w", errUnavailable, payoutID, err)
	}
	e.enrolled.add(payoutID, epoch, now)
	return nil
}

// enrollMemory is how long enrollBatch remembers a payout it enrolled.
const enrollMemory = time.Minute

// recentIDs remembers ids for enrollMemory, at most recentIDsMax of them
// (the oldest forgotten first, in bulk).
type recentIDs struct {
	mu sync.Mutex
	at map[string]recentID
}

// recentID is when an id was remembered, under which epoch marker.
type recentID struct {
	t     time.Time
	epoch string
}

const recentIDsMax = 4096

func (r *recentIDs) has(id, epoch string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.at[id]
	return ok && e.epoch == epoch && now.Sub(e.t) < enrollMemory && !now.Before(e.t)
}

func (r *recentIDs) add(id, epoch string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[string]recentID{}
	}
	if len(r.at) >= recentIDsMax {
		for k, e := range r.at {
			if t := e.t; now.Sub(t) >= enrollMemory || now.Before(t) {
				delete(r.at, k)
			}
		}
		if len(r.at) >= recentIDsMax {
			clear(r.at)
		}
	}
	r.at[id] = recentID{t: now, epoch: epoch}
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

// scheduleOf is a batch's schedule: its dispersion time (zero: none) and,
// only with one, its recurrence (the rail gives the contract's interval).
func scheduleOf(dispersion time.Time, rec *rail.Recurring) payout.Schedule {
	var s payout.Schedule
	if !dispersion.IsZero() {
		s.DispersionDatetime = &dispersion
	}
	if rec != nil && s.DispersionDatetime != nil {
		iv := payout.IntervalMonth
		if rec.Interval == string(payout.IntervalBiweek) {
			iv = payout.IntervalBiweek
		}
		s.Recurring = &payout.Recurring{Interval: iv, Months: int32(rec.Months), Description: payout.OptString(rec.Description)}
	}
	return s
}

// failureOf is the failure reason an item carries.
func failureOf(p *rail.Payout) failure { return failure{code: p.Reason, message: p.ReasonMessage} }

// setReason carries a FAILED or CANCELLED transaction's failure code
// (D07...) and message into the event.
func setReason(sc *payout.StatusChange, fr failure) {
	fr = reasonFor(sc.Status, fr)
	sc.ReasonCode, sc.ReasonMessage = payout.OptString(fr.code), payout.OptString(fr.message)
}

func reasonFor(st payout.Status, fr failure) failure {
	if st != payout.StatusFailed && st != payout.StatusCancelled {
		return failure{}
	}
	return fr
}

// wompiErr classifies a failed Wompi lookup: an id Wompi does not know
// (rail.ErrNotFound, a 404) is not Wompi's (unmapped); anything else may
// pass (unavailable: the webhook is retried, the poll rescheduled).
func wompiErr(err error) error {
	if errors.Is(err, rail.ErrNotFound) {
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
