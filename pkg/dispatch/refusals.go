package dispatch

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// refusalScanSkew is how far the clock that stamped a batch's record and
// its createdAt (ingest's host, or the dispatcher's that wrote a deferred
// copy) may be ahead of the recovering dispatcher's (readBeforeTheLoss).
const refusalScanSkew = 30 * time.Second

// refusalScanBack is how much earlier than the batch was first written
// rejectedOnTopic starts: the clock that stamped its REJECTED (a
// dispatcher's) may be behind ingest's. Generous: the topic holds a few
// events per batch.
const refusalScanBack = time.Hour

// refusalScanLimit bounds one look on the batch status topic. It holds a
// few events per batch: a day of them reads in seconds.
const refusalScanLimit = 2 * time.Minute

// readBeforeTheLoss reports whether the job's epoch began after a loss of
// our state, and the batch was first written before that: an attempt of
// the lost state may have read it.
func (j *job) readBeforeTheLoss() bool {
	return !j.epochBegan.IsZero() && j.src != nil && j.firstWritten().Before(j.epochBegan.Add(j.e.scanSkew))
}

// firstWritten is when the batch was first written: its record's time, or
// the batch's createdAt when earlier. A deferred copy is written anew,
// and carries the batch's createdAt: a copy an attempt after the loss
// deferred (Wompi down, before any look) is still looked for.
func (j *job) firstWritten() time.Time {
	t := j.src.Timestamp
	if c := j.b.CreatedAt; !c.IsZero() && c.Before(t) {
		t = c
	}
	return t
}

// rejectedOnTopic looks on the batch status topic, from when the batch was
// first written on, for the batch's REJECTED from a dispatcher: an attempt before
// a Redis loss refused or failed the batch (reject, poison), and the
// refusal recorded in the batch's record was lost with it. rejectAs and
// endPoisoned write the batch's REJECTED, and have it acknowledged, before
// any request's, so a request's REJECTED on the status topic implies it.
// The refusal's code is not on that event: the requests' REJECTED are
// emitted again as WOMPI_REJECTED with its message, under their eventIds.
func (j *job) rejectedOnTopic() (refusal, bool, error) {
	e, b := j.e, j.b
	ctx, cancel := context.WithTimeout(j.soft, refusalScanLimit)
	defer cancel()
	topic := e.cfg.Topics.BatchStatus
	parts, err := e.partitions(ctx, topic, "TOPIC_BATCH_STATUS")
	if err != nil {
		e.m.refusalScans.WithLabelValues("error").Inc()
		return refusal{}, false, err
	}
	var r refusal
	found := false
	_, err = events.ScanFrom(ctx, e.readOpts(), topic, parts, j.firstWritten().Add(-refusalScanBack),
		[]byte(b.BatchID), func(rec *kgo.Record) error {
			var bs payout.BatchStatusChange
			if err := e.cfg.Codec.DecodeBatchStatusChange(rec.Value, &bs); err != nil {
				if events.Permanent(err) {
					return nil // not an event of ours: not this batch's REJECTED
				}
				// The schema registry did not answer: the record may be
				// the REJECTED, and is read again with the batch.
				return fmt.Errorf("decode a status of the batch at offset %d: %w", rec.Offset, err)
			}
			if bs.BatchID == b.BatchID && bs.Status == payout.BatchRejected && bs.Source == payout.SourceDispatcher {
				r, found = newRefusal(string(payout.ReasonWompiRejected), deref(bs.StatusMessage), false), true
			}
			return nil
		})
	if err != nil {
		e.m.refusalScans.WithLabelValues("error").Inc()
		return refusal{}, false, fmt.Errorf("dispatch: read the batch's statuses on %s (TOPIC_BATCH_STATUS), which a batch written before a Redis loss needs before any POST: %w", topic, err)
	}
	e.m.refusalScans.WithLabelValues(strconv.FormatBool(found)).Inc()
	return r, found, nil
}
