package dispatch

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
)

// The dispatcher's errors come in two classes, as a rail's do (and
// Temporal's retryable and non-retryable errors): a retry may help, and the
// batch is tried again with backoff, never skipped; or it will not, and the
// batch ends (a PermanentError). Anything not classified permanent is
// retryable.

// PermanentError is a failure of one batch that no retry can fix: a budget
// script refusing the batch as invalid, a batch that cannot be encoded, a
// provider 4xx on POST that is neither a validation refusal of its payees
// nor a limit. The batch ends: after a lookup by reference proves that no
// payout holds it, its requests get REJECTED with Reason, the batch record
// goes to the DLQ, the reservation is released and the offset moves on.
type PermanentError struct {
	Reason payout.Reason
	Err    error
}

func (e *PermanentError) Error() string { return "dispatch: permanent failure: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or a cause) ends a batch rather than
// being retried.
func IsPermanent(err error) bool { return asPermanent(err) != nil }

func asPermanent(err error) *PermanentError {
	if err == nil {
		return nil
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, ratelimit.ErrInvalid) {
		return &PermanentError{Reason: payout.ReasonDispatchFailed, Err: err}
	}
	return nil
}

// postPermanent reports a POST answer that refuses the batch as a whole
// and that no retry changes: the rail's Permanent (a 4xx other than
// validation (400, 422: a rejection of its payees), 401/403/404 (our
// credentials or URL: retried, alerted), 409 EXC_022 and 429), except 408,
// 409 and 425, which are retried, and an error before anything was sent
// (no HTTP status), which is retried too.
func postPermanent(err error) bool {
	re, ok := railError(err)
	if !ok || re.Class != rail.Permanent || re.HTTPStatus < 400 || re.HTTPStatus >= 500 {
		return false
	}
	switch re.HTTPStatus {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly:
		return false
	}
	return true
}

// poison ends a batch that failed permanently. Wompi's word comes first:
// if any POST went out, a lookup by reference decides, and a payout found
// is adopted. Otherwise every request gets REJECTED with the reason, the
// batch record is dead-lettered, and the reservation goes back. If even
// the REJECTED events cannot be built, the DLQ record alone carries the
// batch.
func (j *job) poison(p *PermanentError) error {
	e, b := j.e, j.b
	if railName(b) != rail.Wompi && (!j.firstPostAt.IsZero() || j.readBeforeTheLoss() || j.indexedBefore) {
		// Some payees of a single-payout batch may be paid, and no lookup
		// by reference finds them all: REJECTED would be false for them.
		// The batch is retried from its claim (each payee's lookup adopts
		// what was paid), loudly, rather than ended. So is one an attempt
		// before a loss of our state may have posted (readBeforeTheLoss),
		// or whose record is gone while the index says an attempt ran
		// (indexedBefore): the firstPostAt recorded went with the record,
		// and a payee REJECTED though paid would be sent again, under a
		// new requestId, and paid twice.
		j.log.Error("dispatch: a single-payout batch whose payees may be paid failed for good: retried, never rejected whole",
			"reason", p.Reason, "err", p.Err)
		return fmt.Errorf("dispatch: batch %s failed after its payees may have been paid (retried): %w", b.BatchID, p.Err)
	}
	j.log.Error("dispatch: batch failed for good: ending it", "reason", p.Reason, "err", p.Err)
	if !j.firstPostAt.IsZero() || j.unsettled {
		// unsettled: the claim's lookup never answered on a record that
		// proves nothing (Redis lost it, and the firstPostAt in it, after
		// an earlier POST), and the deferral that marked it posted failed
		// for good: Wompi may hold the batch all the same.
		id, err := j.lookupSettled()
		if err != nil {
			return err
		}
		if id != "" {
			return j.finish(id)
		}
	}
	r := newRefusal(string(p.Reason), safeMessage(p.Err), true)
	if railName(b) == rail.Wompi && len(j.keep) > 0 {
		// Recorded before any REJECTED is produced: an attempt that reads
		// the batch again while they are perhaps on the topic ends it the
		// same way, and never posts it after them (job.rejectedBefore).
		refused := make(map[string]refusal, len(j.keep))
		for _, i := range j.keep {
			refused[b.Transactions[i].RequestID] = r
		}
		if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID,
			[]string{stateClaimed, stateDeferred, statePosting}, statePosting, refusedFields(refused)...); err != nil {
			return err
		}
	}
	return j.endPoisoned(payout.Reason(r.code), r.message)
}

// endPoisoned gives the reservation back, dead-letters the batch record and
// emits REJECTED reason for its requests, then records the batch rejected.
func (j *job) endPoisoned(reason payout.Reason, msg string) error {
	e, b := j.e, j.b
	if j.reserved {
		if _, err := e.budget.Release(j.hard, j.res); err != nil {
			return err
		}
	}
	statuses, bs, err := j.poisonStatuses(reason, msg)
	if err != nil {
		j.log.Error("dispatch: cannot build the REJECTED events of a failed batch: it is in the DLQ only", "err", err)
	}
	if bs != nil {
		// The batch's REJECTED first: a request's REJECTED on the topic
		// implies it (rejectedOnTopic).
		j.ungated = true
		if err := j.produce(bs); err != nil {
			return err
		}
	}
	if j.src != nil {
		// Alone, so that a dead letter the DLQ topic refuses as too large
		// (a batch is up to a megabyte, the topic sized to the requests
		// topic's) is sent again with less of the record (deadLetter)
		// rather than refused for ever, the partition held.
		derr := errors.New(string(reason) + ": " + msg)
		send := func(r *kgo.Record) error { return j.produce(r) }
		if err := e.sendDeadLetter(j.src, derr, send, j.log); err != nil {
			return err
		}
	}
	if err := j.produce(statuses...); err != nil {
		return err
	}
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID,
		[]string{stateClaimed, stateDeferred, statePosting}, stateRejected); err != nil {
		return err
	}
	e.m.batches.WithLabelValues("failed").Inc()
	return nil
}

// poisonStatuses builds REJECTED for every request of the batch that this
// batch owns (kept, or dropped for an unknown bank) and the DLQ records of
// its duplicate copies, and the batch's REJECTED (bs).
func (j *job) poisonStatuses(reason payout.Reason, msg string) (recs []*kgo.Record, bs *kgo.Record, err error) {
	e, b := j.e, j.b
	for _, i := range j.keep {
		t := &b.Transactions[i]
		r, err := e.statusRecord(b, t, payout.StatusRejected, string(reason), msg, nil, nil,
			payout.EventID("status", t.RequestID, string(payout.StatusRejected), b.BatchID))
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, r)
	}
	recs, err = e.dropRecords(b, j.src, j.drops, recs)
	if err != nil {
		return nil, nil, err
	}
	bs, err = e.batchStatusRecord(b, nil, payout.BatchRejected, &msg, j.keep)
	if err != nil {
		return nil, nil, err
	}
	return recs, bs, nil
}

// safeMessage renders an error for an event or a DLQ header: Wompi's
// answer as its rail masks it (rail.Error.Message), anything else with
// digits runs and emails masked, cut to 500 bytes.
func safeMessage(err error) string {
	if re, ok := railError(err); ok && re.Rail == rail.Wompi && re.Message != "" {
		return re.Message
	}
	s := longDigits.ReplaceAllString(err.Error(), "****")
	s = emailLike.ReplaceAllString(s, "****")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}
