package track

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// Single-payout rails (SmartFastPay, WEpayout). The dispatcher hands each
// payout off as one pkg/submitted payout whose id is rail.HandOffID(rail,
// providerID), with one transaction whose id is the provider's id and
// whose requestId is ours. The tracker emits each status as a
// PayoutStatusChanged with transactionId = the provider's id, no payoutId,
// and rail = the rail's name, through the same forward-only path as
// Wompi's.

// The webhook paths of the single-payout rails, next to WebhookPath: the
// URLs the dispatcher sends as SMARTFASTPAY_CALLBACK_URL and
// WEPAYOUT_NOTIFICATION_URL.
const (
	SmartFastPayWebhookPath = "/webhooks/smartfastpay"
	WEpayoutWebhookPath     = "/webhooks/wepayout"
)

// errUnknownStatus: the provider's status maps to nothing we know. Nothing
// is emitted, the payout stays non-final (polled again), and it is counted
// (unknown_provider_statuses_total); a webhook is answered 202.
var errUnknownStatus = errors.New("track: unknown provider status")

// errRailNotEnabled: a scheduled payout of a rail this tracker has no
// client for. It is rescheduled (PollMaxBackoff later) with a warning.
var errRailNotEnabled = errors.New("track: rail not enabled in this tracker")

// single returns the client of a single-payout rail, nil when the rail is
// not enabled.
func (e *Engine) single(name rail.Name) rail.SinglePayouts {
	switch name {
	case rail.SmartFastPay:
		if e.cfg.SmartFastPay != nil {
			return e.cfg.SmartFastPay
		}
	case rail.WEpayout:
		if e.cfg.WEpayout != nil {
			return e.cfg.WEpayout
		}
	}
	return nil
}

// railEnabled reports whether this tracker tracks a rail (Wompi always).
func (e *Engine) railEnabled(name rail.Name) bool {
	return name == rail.Wompi || e.single(name) != nil
}

// singleRef is what the tracker knows of one single payout: from the
// hand-off, else from the provider (then batchID and origin are empty).
type singleRef struct {
	requestID, batchID, originAccountID string
	amount                              int64
	handedOff                           bool
}

// lookupSingle reads the hand-off of a single payout.
func (e *Engine) lookupSingle(ctx context.Context, name rail.Name, providerID string) (singleRef, error) {
	m, found, err := e.sub.Lookup(ctx, rail.HandOffID(name, providerID), providerID)
	if err != nil {
		return singleRef{}, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	if !found || m.RequestID == "" {
		return singleRef{}, nil
	}
	return singleRef{requestID: m.RequestID, batchID: m.BatchID, originAccountID: m.OriginAccountID,
		amount: m.AmountInCents, handedOff: true}, nil
}

// railErr classifies a single-payout rail's failure: a 404 on a read means
// the provider has no such payout (errNotAtProvider); anything else may
// pass (errUnavailable: the webhook is answered 503, the poll rescheduled).
func railErr(err error) error {
	if notAtProvider(err) {
		return fmt.Errorf("%w: %w", errNotAtProvider, err)
	}
	return fmt.Errorf("%w: %w", errUnavailable, err)
}

// errNotAtProvider: the provider answered 404 for the payout's id.
var errNotAtProvider = errors.New("track: the provider has no such payout")

func notAtProvider(err error) bool {
	var re *rail.Error
	return errors.As(err, &re) && re.HTTPStatus == http.StatusNotFound
}

// singleChange builds the status event of a single payout.
func singleChange(name rail.Name, providerID string, ref singleRef, st payout.Status, reason string,
	at time.Time, src payout.Source) *payout.StatusChange {
	n := string(name)
	sc := &payout.StatusChange{
		RequestID: ref.requestID, BatchID: payout.OptString(ref.batchID), TransactionID: &providerID,
		Status: st, AmountInCents: ref.amount, OriginAccountID: ref.originAccountID,
		OccurredAt: at, Source: src, Rail: &n,
	}
	if st == payout.StatusFailed || st == payout.StatusCancelled {
		sc.ReasonCode = payout.OptString(reason)
	}
	return sc
}

// singleLookup re-reads a single payout for emitRequest (a status Redis
// knows nothing of, or read before a Redis loss).
func (e *Engine) singleLookup(c rail.SinglePayouts, providerID string, cur payout.Status) func(context.Context) (payout.Status, failure, error) {
	return func(ctx context.Context) (payout.Status, failure, error) {
		p, err := c.Get(ctx, providerID)
		if err != nil {
			return "", failure{}, railErr(err)
		}
		if p.Status == "" {
			e.m.unknownStatuses.WithLabelValues(string(c.Rail()), string(payout.SourceWebhook)).Inc()
			return cur, failure{}, nil
		}
		return p.Status, failure{code: p.Reason}, nil
	}
}

// occurredAt is when the provider says the payout last changed, else now.
func (e *Engine) occurredAt(p rail.Payout) time.Time {
	if !p.UpdatedAt.IsZero() && p.UpdatedAt.Unix() > 0 {
		return p.UpdatedAt
	}
	return e.cfg.Now()
}

// handleSmartFastPay serves POST /webhooks/smartfastpay. Order of checks:
// size (413), JSON (400), the HMAC signature of the whole body (401:
// Webhooks.Parse), shape (400), then each payout of data: our records
// (401 if they contradict it), the transition (200, or 503 so
// SmartFastPay retries).
func (e *Engine) handleSmartFastPay(w http.ResponseWriter, r *http.Request) (string, int) {
	body, result, code, ok := e.readBody(w, r)
	if !ok {
		return result, code
	}
	cb, err := e.cfg.SmartFastPay.Webhooks().Parse(r.Header, body)
	switch {
	case errors.Is(err, smartfastpay.ErrMalformedWebhook):
		return ResultMalformed, http.StatusBadRequest
	case errors.Is(err, smartfastpay.ErrNoPayout):
		// Signed, and of a type we do not track: taken (202), as an
		// unknown event is, so that SmartFastPay does not retry it for
		// days; logged, since a refund or reversal sent under another
		// type would be missed here (the polls still read the payout).
		e.log.Warn("track: callback with no element of type payout; nothing emitted", "rail", rail.SmartFastPay, "err", err)
		return ResultUnknownType, http.StatusAccepted
	case err != nil:
		e.m.sigFailures.Inc()
		e.log.Warn("track: webhook refused", "rail", rail.SmartFastPay, "reason", "signature", "err", err, "remote", r.RemoteAddr)
		return ResultBadSig, http.StatusUnauthorized
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.RequestTimeout)
	defer cancel()
	// Every payout of the callback is handled; the answer is the worst
	// outcome (a refusal, else a 503, else an unknown status), so that a
	// retry covers whatever failed.
	var res emitted = emitDuplicate
	var worst error
	for _, d := range cb.Data {
		got, err := e.onSmartFastPay(ctx, d)
		switch {
		case err != nil:
			worst = worseErr(worst, err)
		case got == emitNew:
			res = emitNew
		}
	}
	return e.answer(r, rail.SmartFastPay, "callback", res, worst)
}

// worseErr keeps the error whose answer matters most: a refusal (401),
// then an internal error, then unavailable (503), then the rest.
func worseErr(a, b error) error {
	rank := func(err error) int {
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errForged):
			return 5
		case errors.Is(err, errUnavailable):
			return 3
		case errors.Is(err, errUnmapped), errors.Is(err, errUnknownStatus):
			return 1
		}
		return 4
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// onSmartFastPay emits the status of one payout of a verified callback.
// The body is signed whole (HMAC), so its status may be used as is; it
// must still agree with our hand-off (transaction_id is our requestId, the
// amount ours), or, without a hand-off, with SmartFastPay's record (GET),
// else the callback is refused. A status read from the provider is
// verified; the body's own status is not (a non-final one on an empty
// status key is read again: emitRequest's lookup).
func (e *Engine) onSmartFastPay(ctx context.Context, d smartfastpay.CallbackPayout) (emitted, error) {
	c := e.cfg.SmartFastPay
	p := d.Payout()
	since, err := e.statuses.epoch(ctx) // before SmartFastPay is read
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	ref, err := e.lookupSingle(ctx, rail.SmartFastPay, p.ProviderID)
	if err != nil {
		return 0, err
	}
	st, reason, at, verified := p.Status, p.Reason, e.cfg.Now(), false
	if !ref.handedOff {
		gp, err := c.Get(ctx, p.ProviderID)
		if err != nil {
			if err = railErr(err); errors.Is(err, errNotAtProvider) {
				return 0, fmt.Errorf("%w: payout %s was never handed off and SmartFastPay does not know it: %w", errForged, p.ProviderID, err)
			}
			return 0, err
		}
		ref = singleRef{requestID: gp.ID, amount: gp.AmountInCents}
		if gp.Status != "" && (st == "" || payout.Beyond(st, gp.Status)) {
			st, reason, at = gp.Status, gp.Reason, e.occurredAt(gp)
		}
		verified = true
	}
	if ref.requestID == "" {
		return 0, fmt.Errorf("%w: payout %s has no transaction id", errUnmapped, p.ProviderID)
	}
	if p.ID != ref.requestID {
		return 0, fmt.Errorf("%w: payout %s: transaction_id is not the request it pays", errForged, p.ProviderID)
	}
	if p.AmountInCents != ref.amount {
		return 0, fmt.Errorf("%w: payout %s: amount %d, recorded %d", errForged, p.ProviderID, p.AmountInCents, ref.amount)
	}
	if st == "" {
		return 0, e.unknownWebhookStatus(ctx, rail.SmartFastPay, p.ProviderID, p.ProviderStatus, ref.handedOff)
	}
	if other, err := e.failureOfOtherFor(ctx, rail.SmartFastPay, ref, p.ProviderID, st); err != nil || other != noOther {
		return emitDuplicate, e.keepWatching(ctx, rail.SmartFastPay, p.ProviderID, other, err)
	}
	sc := singleChange(rail.SmartFastPay, p.ProviderID, ref, st, reason, at, payout.SourceWebhook)
	res, err := e.emitRequest(ctx, sc, verified, since, e.singleLookup(c, p.ProviderID, st), withoutRestart(ref, st))
	if err == nil && !ref.handedOff {
		err = e.enroll(ctx, rail.SmartFastPay, p.ProviderID, sc.Status)
	}
	return res, err
}

// otherPayout is failureOfOther's verdict on a failure of a payout that
// has no hand-off (adoptedFailure's on one that has).
type otherPayout int

const (
	// noOther: no other payout under our id may still pay: the failure
	// is emitted.
	noOther otherPayout = iota
	// otherFollowed: the request's status key follows another payout:
	// the failure is not emitted, and the payout is no longer watched
	// (that payout's statuses end the request).
	otherFollowed
	// otherMayPay: the rail's lookup by our id lists another payout not
	// failed: the failure is not emitted yet, and the payout stays
	// watched (a poll reschedules it, a webhook enrolls it). The lookup
	// may be behind that payout's own failure (a listing served by a
	// copy behind): if each of two failed payouts lists the other as
	// live, dropping both would leave the request non-final for ever.
	// Its polls end once the key follows the other payout (its status
	// emitted) or the lookup lists no other payout not failed (this
	// failure emitted). Also when the key knows no status and a payout
	// created after this one ended too, or another one was paid then
	// refunded or returned: that one's end is emitted.
	otherMayPay
)

// failureOfOther reports whether st, a failure read for a payout that has
// no hand-off, must not be emitted for requestID: the request's status key
// follows another payout of the same rail under our id (the one the
// dispatcher adopted, dispatch.adoptable, or one whose failure ended the
// request). Emitted, it would end the request FAILED while the adopted payout pays
// (the marketplace asks again), then the adopted payout's APPROVED would
// follow it as a new life. A RETURNED (the other payout paid, then refunded
// or returned) likewise: emitted, it would end the request RETURNED (after
// the APPROVED it implies, on a request still PENDING) while the adopted
// payout pays or paid it. When the key knows no status, or follows this
// payout, the rail's lookup by our id decides: another payout under it that
// has not failed is the one adopted (otherMayPay: the lookup may lag).
func (e *Engine) failureOfOther(ctx context.Context, name rail.Name, requestID, providerID string, st payout.Status) (otherPayout, error) {
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
	// A life ended by another payout's failure too: every payout under our
	// id is one life's (the dispatcher adopts one of them, failed or not,
	// and never posts our id again), and after a FAILED or a CANCELLED a
	// new transaction restarts the request's life: emitted, this failure
	// would be a second final status, which a marketplace that asks again
	// on a failure acts on twice.
	if cur != "" && tx != "" && tx != providerID {
		e.log.Error("track: a failure of a payout not handed off is not emitted: the request follows another payout under our id",
			"rail", name, "request_id", requestID, "payout", truncate(providerID, 32), "status", st, "known", cur)
		return otherFollowed, nil
	}
	switch payout.Status(cur) {
	case payout.StatusFailed, payout.StatusCancelled:
		return noOther, nil
	}
	// The key knows no status (lost with Redis, or none yet), or follows
	// this payout (its webhook came before the dispatcher's lookup, which
	// missed it and posted another): the rail says whether another payout
	// under our id may still pay, the one the dispatcher adopts.
	// The lookup not listing this payout, which the provider just answered
	// for, is served from a copy behind the creates (the one that may have
	// made the dispatcher miss this payout and post another), and proves
	// no other payout absent. Emitted, this failure would end the request
	// FAILED while the adopted payout pays, its APPROVED following as a
	// new life. Kept back and watched until the lookup lists it.
	ps, self, verdict, err := e.lookUpSelf(ctx, name, requestID, providerID, st, "a payout not handed off")
	if err != nil || verdict != noOther || self < 0 {
		return verdict, err
	}
	for _, p := range ps {
		switch p.Status {
		case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected, payout.StatusReturned:
			if cur != "" || p.ProviderID == "" || p.ProviderID == providerID {
				continue
			}
			// The key knows no status, and another payout under our id
			// was paid, then refunded or returned: its APPROVED (on the
			// topic before the loss, or emitted with its RETURNED) ends
			// the request's life, which no new transaction restarts
			// (requestRestart): emitted first, this failure would follow
			// that APPROVED and keep its RETURNED back for good.
			paid := p.Status == payout.StatusReturned && st != payout.StatusReturned
			// A payout under our id created after this one ended too: its
			// end is emitted, not this one. This one may have ended an
			// earlier life (its final status on the topic already), and
			// the later one's life followed: emitted first, this failure
			// would keep the later one's back (the key following it) and
			// leave that life non-final. Not when this one was paid (a
			// RETURNED) and the later one was not: no life follows a
			// payment, and the later one's failure waits for it (paid).
			later := createdAfter(p, ps[self]) &&
				(st != payout.StatusReturned || p.Status == payout.StatusReturned)
			if paid || later {
				e.log.Error("track: a failure of a payout not handed off is not emitted yet: another payout under our id ended too, and its end is the request's; both stay watched",
					"rail", name, "request_id", requestID, "payout", truncate(providerID, 32), "status", st,
					"other", truncate(p.ProviderID, 32), "other_status", p.Status)
				if err := e.schedule(ctx, name, p.ProviderID); err != nil {
					return noOther, err
				}
				e.m.failuresHeld.WithLabelValues(string(name)).Inc()
				return otherMayPay, nil
			}
			continue
		}
		if p.ProviderID != "" && p.ProviderID != providerID {
			e.log.Error("track: a failure of a payout not handed off is not emitted yet: another payout under our id may still pay; the payout stays watched",
				"rail", name, "request_id", requestID, "payout", truncate(providerID, 32), "status", st, "other", truncate(p.ProviderID, 32))
			e.m.failuresHeld.WithLabelValues(string(name)).Inc()
			return otherMayPay, nil
		}
	}
	// The key holds no status of any payout (none yet, or a DEFERRED): the
	// dispatcher has adopted none. This payout may be one whose POST's
	// answer was lost, its failure read while the dispatcher waits to look
	// the payee up: a lookup behind that misses it lets the dispatcher post
	// another, not created (or not listed) yet. Emitted, this failure would
	// end the request FAILED, the other's SUBMITTED and APPROVED following
	// as a new life: the marketplace, which asks again on a FAILED, pays
	// the payee twice. Kept back and watched while the payout is younger
	// than handOffWait: its hand-off (adoptedFailure decides), the other's
	// status in the key (otherFollowed) or the other listed (otherMayPay)
	// ends the wait, else its age does (a hand-off lost with Redis).
	if tx == "" && !payout.Status(cur).Final() && st != payout.StatusReturned {
		wait, err := e.awaitsHandOff(ctx, ps[self])
		if err != nil || !wait {
			return noOther, err
		}
		e.log.Error("track: a failure of a payout not handed off is not emitted yet: the request has no status of any payout, and the dispatcher may still post another; the payout stays watched",
			"rail", name, "request_id", requestID, "payout", truncate(providerID, 32), "status", st)
		e.m.failuresHeld.WithLabelValues(string(name)).Inc()
		return otherMayPay, nil
	}
	return noOther, nil
}

// handOffWait bounds how long failureOfOther (on Wompi, followsOther)
// keeps back the failure of a payout without hand-off on a request that
// has no status of any payout: longer than a dispatcher takes from a POST
// whose answer was lost to the POST of another payout of the payee after
// its lookup (RECOVERY_GRACE and RAIL_PATIENCE, a takeover after a
// crash), or to its retry of the payee deferred meanwhile (DEFERRED:
// RAIL_RETRY backed off, at most 16 minutes by default).
const handOffWait = 20 * time.Minute

// awaitsHandOff reports whether the failure of p, a payout without
// hand-off on a request whose key holds no status of any payout, waits
// for a hand-off: p is younger than handOffWait (by its creation time,
// else its last change) and Redis lost nothing since p was made (the
// status epoch is older than p), so the empty key says that no dispatcher has
// adopted a payout yet, and one may still post another. A payout without
// either time does not wait: nothing would end it. Nor does one made
// before the epoch: the key and the hand-off were lost with Redis, the
// empty key proves nothing, and holding would delay every failure read
// after a loss by handOffWait; the lookups (by our id on the single
// rails, by the batch's reference on Wompi) judge it.
func (e *Engine) awaitsHandOff(ctx context.Context, p rail.Payout) (bool, error) {
	born := p.CreatedAt
	if born.Unix() <= 0 {
		born = p.UpdatedAt
	}
	age := e.cfg.Now().Sub(born)
	if born.Unix() <= 0 || age >= handOffWait {
		return false, nil
	}
	marker, now, err := e.statuses.currentEpochAt(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	// Ages, not instants: the epoch's by Redis's clock, the payout's by
	// ours against the provider's, so that no two clocks are compared.
	created := epochCreated(marker)
	if created <= 0 {
		// A marker written at a first start, by a process that knew no
		// earlier one: no loss it knows of, so none since p was made.
		return true, nil
	}
	return time.Duration(now-created)*time.Millisecond > age, nil
}

// createdAfter reports whether a was created after b, by creation time,
// then by the provider's id (shorter first: WEpayout's are numbers), so
// that of two payouts each finds the other on the same side.
func createdAfter(a, b rail.Payout) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return cmp.Or(cmp.Compare(len(a.ProviderID), len(b.ProviderID)), cmp.Compare(a.ProviderID, b.ProviderID)) > 0
}

// failureOfOtherFor is failureOfOther for a payout of ref: one with a
// hand-off is the one adopted (adoptedFailure).
func (e *Engine) failureOfOtherFor(ctx context.Context, name rail.Name, ref singleRef, providerID string, st payout.Status) (otherPayout, error) {
	if ref.handedOff {
		return e.adoptedFailure(ctx, name, ref.requestID, providerID, st)
	}
	return e.failureOfOther(ctx, name, ref.requestID, providerID, st)
}

// adoptedFailure reports whether st, a failure of the payout the
// dispatcher adopted (handed off), must not be emitted for requestID yet:
// the rail's lookup by our id lists another payout under it that may
// still pay. The dispatcher posts only after a lookup that found nothing,
// but a lookup served from a copy behind may have missed an earlier
// payout (the answer to its POST lost): it was not adopted, and it pays.
// Emitted, the adopted payout's FAILED would end the request while that
// one pays; its APPROVED then follows as a new life, and the marketplace,
// which asks again on a FAILED, pays the payee twice. Kept back
// (otherMayPay), the adopted payout stays polled and the other is put on
// the schedule (its webhooks, without hand-off, may be lost): once the
// request's status key follows the other (its status emitted), the
// failure is not emitted (otherFollowed); once the lookup lists no other
// payout that may pay, it is. Another payout that ended before this one
// was created, and was created itself more than half of DEDUPE_WINDOW
// before it (paid in an earlier life: the requestId sent again after
// DEDUPE_WINDOW), does not count; when its times are unknown, it does.
// One made since is this life's, whenever it ended: it may have paid
// before the lookup behind it let the dispatcher post this payout (its
// callbacks lost, its APPROVED never emitted), and this payout's FAILED
// would end the request the other paid. A
// lookup that does not list this payout yet (behind its create) holds the
// failure and schedules nothing else: it cannot tell an earlier life's
// payout from one of this life. A RETURNED is emitted as before: the
// adopted payout paid.
func (e *Engine) adoptedFailure(ctx context.Context, name rail.Name, requestID, providerID string, st payout.Status) (otherPayout, error) {
	switch st {
	case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected:
	default:
		return noOther, nil
	}
	// A lookup that does not list the adopted payout (behind its create)
	// tells neither whether another payout may still pay nor of which life
	// a payout it lists is: kept back, and nothing else is put on the
	// schedule (a payout paid in an earlier life, the requestId sent again
	// after DEDUPE_WINDOW, polled, would emit its APPROVED into this life).
	ps, self, verdict, err := e.lookUpSelf(ctx, name, requestID, providerID, st, "the adopted payout")
	if err != nil || verdict != noOther || self < 0 {
		return verdict, err
	}
	born := ps[self].CreatedAt
	for _, p := range ps {
		if p.ProviderID == "" || p.ProviderID == providerID {
			continue
		}
		switch p.Status {
		case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected, payout.StatusReturned:
			continue
		}
		if p.Status != "" && p.Status.Final() && born.Unix() > 0 && p.UpdatedAt.Unix() > 0 && !p.UpdatedAt.After(born) &&
			p.CreatedAt.Unix() > 0 && p.CreatedAt.Before(born.Add(-e.cfg.DedupeWindow/2)) {
			continue // ended before this payout was made, and made long before it: an earlier life's
		}
		v, err := readStatusKey(ctx, e.statuses.rdb, e.statuses.key(kindRequest, requestID))
		if err != nil {
			return noOther, fmt.Errorf("%w: redis: %w", errUnavailable, err)
		}
		if tx := cmp.Or(v.tx, v.flx); tx == p.ProviderID {
			return otherFollowed, nil
		}
		e.log.Error("track: a failure of the adopted payout is not emitted yet: another payout under our id may still pay; both stay watched",
			"rail", name, "request_id", requestID, "payout", truncate(providerID, 32), "status", st, "other", truncate(p.ProviderID, 32))
		if err := e.schedule(ctx, name, p.ProviderID); err != nil {
			return noOther, err
		}
		e.m.failuresHeld.WithLabelValues(string(name)).Inc()
		return otherMayPay, nil
	}
	return noOther, nil
}

// lookUpSelf asks the rail's lookup by our id for the payouts under
// requestID, and the position of providerID's among them. self is -1 when
// the rail is not enabled (verdict noOther: nothing to ask), or when the
// lookup does not list the payout the provider just answered for (a copy
// behind its create): the failure st of whose payout is then held
// (otherMayPay, logged and counted).
func (e *Engine) lookUpSelf(ctx context.Context, name rail.Name, requestID, providerID string, st payout.Status, whose string) (ps []rail.Payout, self int, verdict otherPayout, err error) {
	c := e.single(name)
	if c == nil {
		return nil, -1, noOther, nil
	}
	if ps, err = c.Find(ctx, requestID); err != nil {
		return nil, -1, noOther, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	if self = slices.IndexFunc(ps, func(p rail.Payout) bool { return p.ProviderID == providerID }); self >= 0 {
		return ps, self, noOther, nil
	}
	e.log.Error("track: a failure of "+whose+" is not emitted yet: the rail's lookup by our id does not list it (behind); the payout stays watched",
		"rail", name, "request_id", requestID, "payout", truncate(providerID, 32), "status", st)
	e.m.failuresHeld.WithLabelValues(string(name)).Inc()
	return nil, -1, otherMayPay, nil
}

// withoutRestart is the emit of a status of a single payout: a failure of
// one without hand-off, which failureOfOther let through, does not
// restart the request's life after another payout's FAILED or CANCELLED
// (transition.noRestart). failureOfOther read the key before the emit: two
// such failures handled at once (two webhooks, or one poll round, after a
// Redis loss) each found no other payout that may pay, and the second,
// emitted, would be a second final status. Every payout under our id is
// one life's (failureOfOther).
func withoutRestart(ref singleRef, st payout.Status) func(*transition) {
	return func(tr *transition) {
		switch st {
		case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected, payout.StatusReturned:
			tr.noRestart = tr.noRestart || !ref.handedOff
		}
	}
}

// keepWatching ends a webhook whose failure failureOfOther kept back (or
// could not judge: err): a payout kept back only because of what the
// rail's lookup listed (otherMayPay) is put on the polling schedule, as
// no hand-off does, so that its failure is emitted once no other payout
// may pay; a failure to schedule it is enroll's errUnavailable.
func (e *Engine) keepWatching(ctx context.Context, name rail.Name, providerID string, other otherPayout, err error) error {
	if err != nil || other != otherMayPay {
		return err
	}
	return e.schedule(ctx, name, providerID)
}

// unknownWebhookStatus handles a webhook of a single payout whose provider
// status we do not know: it is counted, the payout is put on the polling
// schedule when no hand-off does (not final: polled until the provider
// answers a status we know; a failure is enroll's errUnavailable), and
// the webhook is errUnknownStatus.
func (e *Engine) unknownWebhookStatus(ctx context.Context, name rail.Name, providerID, providerStatus string, handedOff bool) error {
	e.m.unknownStatuses.WithLabelValues(string(name), string(payout.SourceWebhook)).Inc()
	if !handedOff {
		if err := e.enroll(ctx, name, providerID, ""); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: %s payout %s: %q", errUnknownStatus, name, providerID, truncate(providerStatus, 32))
}

// enroll puts a single payout that has no hand-off (lost with Redis, or
// expired) and is not final on the polling schedule, so that a lost webhook
// after this one is still caught: the schedule rebuilt after a Redis loss
// lists Wompi's payouts only. A status we do not know (st "") is never
// final: such a payout is put on the schedule too. Its polls take our id
// from the provider. A SmartFastPay APPROVED may still be refunded or
// returned (mayReverse): it is put on the schedule too, and its polls
// watch it until ReturnWatch. A failure to schedule it is errUnavailable:
// the webhook is answered 503, so that the provider sends it again (its
// status then a duplicate) rather than leave the payout on no schedule.
func (e *Engine) enroll(ctx context.Context, name rail.Name, providerID string, st payout.Status) error {
	if st.Final() && !mayReverse(name, st) {
		return nil
	}
	return e.schedule(ctx, name, providerID)
}

// schedule is enroll whatever the status: the payout is put on the
// polling schedule unless it is there.
func (e *Engine) schedule(ctx context.Context, name rail.Name, providerID string) error {
	id := rail.HandOffID(name, providerID)
	if err := e.sub.Schedule(ctx, id, e.cfg.Now().Add(min(backoff(0), e.cfg.PollMaxBackoff))); err != nil {
		e.log.Warn("track: schedule a payout without hand-off", "payoutId", id, "err", err)
		return fmt.Errorf("%w: redis: schedule %s: %w", errUnavailable, id, err)
	}
	return nil
}

// handleWEpayout serves POST /webhooks/wepayout. WEpayout's signature
// covers only the invoice, the currency, the amount and the key, and the
// body carries neither currency nor amount: it is checked against OUR
// record (the hand-off's requestId and amount, BRL), else against
// WEpayout's record of the payment the body names. Nothing else in the
// body is authenticated, so the status emitted is the one WEpayout
// answers for the payment (ConfirmWebhook, or the read without a
// hand-off), never the body's. Order: size (413), JSON (400), shape
// (400), signature and our records (401), the transition (200, or 503 so
// WEpayout retries).
func (e *Engine) handleWEpayout(w http.ResponseWriter, r *http.Request) (string, int) {
	body, result, code, ok := e.readBody(w, r)
	if !ok {
		return result, code
	}
	wh, err := wepayout.ParseWebhook(body)
	if err != nil {
		return ResultMalformed, http.StatusBadRequest
	}
	ctx, cancel := context.WithTimeout(r.Context(), e.cfg.RequestTimeout)
	defer cancel()
	res, err := e.onWEpayout(ctx, r.Header, body, wh)
	if errors.Is(err, wepayout.ErrInvalidSignature) {
		e.m.sigFailures.Inc()
		e.log.Warn("track: webhook refused", "rail", rail.WEpayout, "reason", "signature", "err", err, "remote", r.RemoteAddr)
		return ResultBadSig, http.StatusUnauthorized
	}
	if errors.Is(err, wepayout.ErrMalformedWebhook) {
		return ResultMalformed, http.StatusBadRequest
	}
	return e.answer(r, rail.WEpayout, "payment", res, err)
}

func (e *Engine) onWEpayout(ctx context.Context, h http.Header, body []byte, wh *wepayout.Webhook) (emitted, error) {
	c := e.cfg.WEpayout
	providerID := string(wh.ID)
	since, err := e.statuses.epoch(ctx) // before WEpayout is read
	if err != nil {
		return 0, fmt.Errorf("%w: redis: %w", errUnavailable, err)
	}
	ref, err := e.lookupSingle(ctx, rail.WEpayout, providerID)
	if err != nil {
		return 0, err
	}
	var read *rail.Payout
	if !ref.handedOff {
		gp, err := c.Get(ctx, providerID)
		if err != nil {
			if err = railErr(err); errors.Is(err, errNotAtProvider) {
				return 0, fmt.Errorf("%w: payment %s was never handed off and WEpayout does not know it: %w", errForged, providerID, err)
			}
			return 0, err
		}
		ref = singleRef{requestID: gp.ID, amount: gp.AmountInCents}
		read = &gp
	}
	if ref.requestID == "" {
		return 0, fmt.Errorf("%w: payment %s has no invoice", errUnmapped, providerID)
	}
	rec := rail.PayoutRequest{ID: ref.requestID, Currency: wepayout.CurrencyBRL, AmountInCents: ref.amount}
	v, err := wepayout.VerifyWebhook(h, body, rec, e.cfg.WEpayoutAPIKey)
	if err != nil {
		return 0, err
	}
	if read == nil {
		p, err := c.ConfirmWebhook(ctx, v)
		if err != nil {
			if errors.Is(err, wepayout.ErrInvalidSignature) {
				return 0, err
			}
			return 0, railErr(err)
		}
		read = &p
	}
	if read.ProviderID != providerID {
		// The payment id is not signed: WEpayout may resolve another text
		// of it ("0100001") to the payment. Only its own text names the
		// transaction the status key knows; another would start a new
		// life there and repeat a final status under a new eventId.
		return 0, fmt.Errorf("%w: payment id %q is answered as payment %q", errForged, truncate(providerID, 32), truncate(read.ProviderID, 32))
	}
	if read.Status == "" {
		return 0, e.unknownWebhookStatus(ctx, rail.WEpayout, providerID, read.ProviderStatus, ref.handedOff)
	}
	if other, err := e.failureOfOtherFor(ctx, rail.WEpayout, ref, providerID, read.Status); err != nil || other != noOther {
		return emitDuplicate, e.keepWatching(ctx, rail.WEpayout, providerID, other, err)
	}
	sc := singleChange(rail.WEpayout, providerID, ref, read.Status, read.Reason, e.occurredAt(*read), payout.SourceWebhook)
	res, err := e.emitRequest(ctx, sc, true, since, e.singleLookup(c, providerID, read.Status), withoutRestart(ref, read.Status))
	if err == nil && !ref.handedOff {
		err = e.enroll(ctx, rail.WEpayout, providerID, sc.Status)
	}
	return res, err
}

// pollSingle polls one single payout (a hand-off id "<rail>:<providerID>"):
// GET it from its provider, emit its status (source POLL, verified), and
// take it off the schedule once final.
func (e *Engine) pollSingle(ctx context.Context, name rail.Name, providerID, id string, now time.Time) (bool, int, error) {
	n := 0
	retry := func(err error) (bool, int, error) {
		if rerr := e.sub.Reschedule(context.WithoutCancel(ctx), id, now.Add(min(backoff(0), e.cfg.PollMaxBackoff))); rerr != nil {
			e.log.Warn("track: reschedule", "payoutId", id, "err", rerr)
		}
		e.log.Warn("track: poll failed", "payoutId", id, "err", err)
		return false, n, err
	}
	c := e.single(name)
	if c == nil {
		e.log.Warn("track: scheduled payout of a rail not enabled in this tracker rescheduled; set its credentials to track it",
			"rail", name, "payoutId", id)
		if err := e.sub.Reschedule(ctx, id, now.Add(e.cfg.PollMaxBackoff)); err != nil {
			return false, 0, err
		}
		return false, 0, fmt.Errorf("%w: %s", errRailNotEnabled, name)
	}
	since, err := e.statuses.epoch(ctx) // before the provider is read
	if err != nil {
		return retry(fmt.Errorf("%w: redis: %w", errUnavailable, err))
	}
	p, err := c.Get(ctx, providerID)
	if err != nil {
		if notAtProvider(err) {
			// Every scheduled id came from the provider (its create's
			// answer, its listing, a read of it): a 404 is a read behind
			// the write, or a wrong base URL, never proof that the payout
			// does not exist. Dropped, a payout whose webhooks are lost
			// would never leave SUBMITTED. Polled again at the longest
			// backoff, loudly.
			e.log.Error("track: polled payout unknown to its provider; polled again at the longest backoff", "rail", name, "payoutId", id)
			if err := e.sub.Reschedule(context.WithoutCancel(ctx), id, now.Add(e.cfg.PollMaxBackoff)); err != nil {
				return false, 0, err
			}
			return false, 0, railErr(err)
		}
		return retry(railErr(err))
	}
	if p.ProviderID != providerID {
		// Another text of the id (an earlier tracker enrolled one from an
		// unsigned webhook field): its statuses belong to the payout's own
		// id, which is tracked apart. Emitted under this one, they would
		// repeat its final status under a new eventId.
		e.log.Error("track: polled payout answers under another id; nothing emitted, polled again at the longest backoff",
			"rail", name, "payoutId", truncate(id, 48))
		if err := e.sub.Reschedule(context.WithoutCancel(ctx), id, now.Add(e.cfg.PollMaxBackoff)); err != nil {
			return false, 0, err
		}
		return false, 0, fmt.Errorf("%w: payout %s answers as %s", errForged, truncate(id, 48), truncate(p.ProviderID, 32))
	}
	ref, err := e.lookupSingle(ctx, name, providerID)
	if err != nil {
		return retry(err)
	}
	if !ref.handedOff {
		ref = singleRef{requestID: p.ID, amount: p.AmountInCents}
	}
	if ref.requestID == "" || (p.ID != "" && p.ID != ref.requestID) {
		// The provider's record of our id contradicts the hand-off: emit
		// nothing for either request.
		e.log.Error("track: polled payout's id of ours contradicts the hand-off; nothing emitted", "rail", name, "payoutId", id)
		return retry(fmt.Errorf("%w: payout %s", errForged, id))
	}
	other := noOther
	if p.Status == "" {
		e.m.unknownStatuses.WithLabelValues(string(name), string(payout.SourcePoll)).Inc()
		e.log.Warn("track: polled payout has a status we do not know; kept non-final", "rail", name, "payoutId", id,
			"status", truncate(p.ProviderStatus, 32))
	} else if other, err = e.failureOfOtherFor(ctx, name, ref, providerID, p.Status); err != nil {
		return retry(err)
	} else if other == noOther {
		sc := singleChange(name, providerID, ref, p.Status, p.Reason, now, payout.SourcePoll)
		res, err := e.emitRequest(ctx, sc, true, since, nil, withoutRestart(ref, p.Status))
		switch {
		case err != nil:
			return retry(err)
		case res == emitReread:
			return retry(errNoReread)
		case res == emitNew:
			n++
		}
	}
	// A creation time the client could not read (the zero time) would
	// make the payout as old as year 1 and end its return watch at its
	// first poll: the last change (a payout's APPROVED: when it was paid)
	// stands in for it.
	born := p.CreatedAt
	if born.Unix() <= 0 && p.UpdatedAt.Unix() > 0 {
		born = p.UpdatedAt
	}
	age, aged := now.Sub(born), born.Unix() > 0
	if sp, found, err := e.sub.Payout(ctx, id); err == nil && found && sp.SubmittedAt.Unix() > 0 {
		age, aged = now.Sub(sp.SubmittedAt), true
	}
	// A failure kept back because the rail's lookup listed another payout
	// that may still pay (otherMayPay) is not final for the request yet:
	// the lookup may be behind that payout's own failure. Polled again.
	if p.Status.Final() && other != otherMayPay {
		if !mayReverse(name, p.Status) || watched(age, p, now) > e.cfg.ReturnWatch {
			return true, n, e.done(ctx, id)
		}
		// Paid, and a refund or return may still follow (its callback may
		// be lost): watched at the longest interval until ReturnWatch.
		return false, n, e.sub.Reschedule(ctx, id, now.Add(e.cfg.PollMaxBackoff))
	}
	if aged {
		e.m.pending.observe(name, age)
	}
	return false, n, e.sub.Reschedule(ctx, id, now.Add(min(backoff(age), e.cfg.PollMaxBackoff)))
}

// watched is how long an APPROVED payout of the given age has been
// watched for a refund: since its submission (or creation), or since its
// last change (its payment) when that is later. A payout held onhold past
// ReturnWatch and paid only then is watched from its payment: from its
// submission, the first poll that read it paid took it off the schedule,
// and a refund whose callbacks were lost was never emitted.
func watched(age time.Duration, p rail.Payout, now time.Time) time.Duration {
	if p.UpdatedAt.Unix() > 0 {
		return min(age, now.Sub(p.UpdatedAt))
	}
	return age
}

// mayReverse reports whether a payout of the rail in status st may still
// change: a SmartFastPay payment may be refunded or returned.
func mayReverse(name rail.Name, st payout.Status) bool {
	return name == rail.SmartFastPay && st == payout.StatusApproved
}

// rebuildSingles puts back on the polling schedule, after a Redis loss,
// every payout of the single-payout rails not yet final created within
// rebuildPendingLookback (or RebuildLookback, if longer), and the final
// ones created within RebuildLookback (rebuildTakesSingle): their hand-off
// is gone with Redis, and a lost webhook would leave them untracked. The
// final ones too, as for Wompi's: a final status whose webhook was lost
// while Redis was gone (or before the poll that would have read it) is
// still emitted, again with the same eventId if it was; their first poll
// takes them off. Their polls take our id from the provider.
// only, when not nil, names the rails to list (else every enabled one).
func (e *Engine) rebuildSingles(ctx context.Context, now time.Time, only []rail.Name) (int, error) {
	n := 0
	for _, name := range rail.Names {
		c := e.single(name)
		if c == nil || (only != nil && !slices.Contains(only, name)) {
			continue
		}
		from := now.Add(-max(e.cfg.RebuildLookback, rebuildPendingLookback))
		for p, err := range c.List(ctx, rail.ListFilter{From: from, To: now}) {
			if err != nil {
				return n, fmt.Errorf("%s: %w", name, err)
			}
			if !e.rebuildTakesSingle(name, p, now) {
				continue
			}
			if p.ProviderID == "" {
				e.rebuildSkipsIDless(name, p.ID)
				continue
			}
			// A final one a millisecond later: the schedule is polled in
			// due order, so after a loss with many settled payouts in the
			// lookback, those that may still change are polled first.
			at := now
			if p.Status != "" && p.Status.Final() && !mayReverse(name, p.Status) {
				at = now.Add(time.Millisecond)
			}
			if err := e.sub.Schedule(ctx, rail.HandOffID(name, p.ProviderID), at); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// rebuildSkipsIDless counts and reports a payout (of Wompi: a batch) the
// rebuild found listed without the provider's id, ref being our id for it
// when the listing names one. Its poll would ask for the provider's id ""
// (a Wompi GET of the collection, or of no payout): it is left off the
// schedule, and only its webhooks track it. Failing the rebuild instead
// would leave every other payout unpolled for as long as the rail lists
// it so.
func (e *Engine) rebuildSkipsIDless(name rail.Name, ref string) {
	e.m.rebuildIDless.WithLabelValues(string(name)).Inc()
	e.log.Error("track: rebuild: a payout listed without the provider's id cannot be polled; only its webhooks track it",
		"rail", name, "reference", ref)
}

// rebuildTakesSingle reports whether the rebuild puts a single payout back
// on the schedule: one not final (an unknown status is not), a
// SmartFastPay APPROVED still watched for a refund (ReturnWatch since its
// creation or its last change, watched), and a
// final one created or last changed within RebuildLookback (none where it
// is negative); one without a creation time is taken. A payout held for
// days, then settled (or paid, then refunded) just before the loss, is
// older than RebuildLookback, but its final status is as recent as the
// webhook the loss may have cost.
func (e *Engine) rebuildTakesSingle(name rail.Name, p rail.Payout, now time.Time) bool {
	switch {
	case p.Status == "" || !p.Status.Final():
		return true
	case mayReverse(name, p.Status) && (p.CreatedAt.IsZero() || !p.CreatedAt.Before(now.Add(-e.cfg.ReturnWatch)) ||
		p.UpdatedAt.After(now.Add(-e.cfg.ReturnWatch))):
		return true
	case e.cfg.RebuildLookback <= 0:
		return false
	default:
		from := now.Add(-e.cfg.RebuildLookback)
		return p.CreatedAt.IsZero() || !p.CreatedAt.Before(from) || p.UpdatedAt.Unix() > 0 && !p.UpdatedAt.Before(from)
	}
}
