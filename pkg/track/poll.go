package track

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// PollResult sums up one polling round.
type PollResult struct {
	Rebuilt     bool // the schedule was rebuilt from Wompi first
	Swept       int  // payouts of the hand-off put back on the schedule (SweepInterval)
	Claimed     int  // payouts claimed
	Done        int  // payouts that reached their end and left the schedule
	Errors      int  // payouts whose poll failed (rescheduled soon)
	Transitions int  // transitions produced
}

// RunPoller runs a polling round every PollInterval until ctx is done. A
// failed round is logged and the loop goes on.
func (e *Engine) RunPoller(ctx context.Context) error {
	// The status epoch marker, written now if missing: this process then
	// knows it, and a marker missing later is a loss (Config.LossGrace).
	if _, err := e.statuses.epoch(ctx); err != nil {
		e.log.Warn("track: read the status epoch marker", "err", err)
	}
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		if _, err := e.PollOnce(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("track: polling round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PollOnce runs one polling round: rebuild the schedule if Redis lost it,
// claim the due payouts (leased, so no two replicas poll one payout at
// once), poll each one and reschedule it, or drop it from the schedule once
// the batch and every transaction are final.
func (e *Engine) PollOnce(ctx context.Context) (PollResult, error) {
	var res PollResult
	rebuilt, err := e.ensureSchedule(ctx)
	res.Rebuilt = rebuilt
	if err != nil {
		if ctx.Err() == nil {
			e.m.rebuildErrors.Inc()
		}
		return res, err
	}
	if res.Swept, err = e.sweepIfDue(ctx); err != nil {
		// The round goes on: the sweep is retried next round.
		e.log.Warn("track: schedule sweep failed", "err", err)
	}
	now := e.cfg.Now()
	ids, err := e.sub.ClaimDue(ctx, now, e.cfg.PollLease, e.cfg.PollBatch)
	if err != nil {
		return res, fmt.Errorf("track: claim due payouts: %w", err)
	}
	res.Claimed = len(ids)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, e.cfg.PollConcurrency)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			done, n, err := e.pollPayout(ctx, id, now)
			mu.Lock()
			defer mu.Unlock()
			res.Transitions += n
			switch {
			case err != nil:
				res.Errors++
				e.m.polls.WithLabelValues("error").Inc()
			case done:
				res.Done++
				e.m.polls.WithLabelValues("done").Inc()
			default:
				e.m.polls.WithLabelValues("pending").Inc()
			}
		}()
	}
	wg.Wait()
	return res, nil
}

// pollPayout polls one payout and emits what changed (source POLL).
func (e *Engine) pollPayout(ctx context.Context, payoutID string, now time.Time) (done bool, n int, err error) {
	if name, providerID, ok := rail.ParseHandOffID(payoutID); ok {
		return e.pollSingle(ctx, name, providerID, payoutID, now)
	}
	retry := func(err error) (bool, int, error) {
		if rerr := e.sub.Reschedule(context.WithoutCancel(ctx), payoutID, now.Add(min(backoff(0), e.cfg.PollMaxBackoff))); rerr != nil {
			e.log.Warn("track: reschedule", "payoutId", payoutID, "err", rerr)
		}
		e.log.Warn("track: poll failed", "payoutId", payoutID, "err", err)
		return false, n, err
	}
	// The epoch marker before anything is read from Wompi: a Redis data
	// loss after this point makes the statuses read below stale.
	since, err := e.statuses.epoch(ctx)
	if err != nil {
		return retry(fmt.Errorf("%w: redis: %w", errUnavailable, err))
	}
	wp, err := e.cfg.Wompi.GetBatch(ctx, payoutID)
	if err != nil {
		if errors.Is(err, rail.ErrNotFound) {
			// Every scheduled id came from Wompi (the POST's answer, a
			// listing): a 404 is a read behind the write, or a wrong base
			// URL, never proof that the payout does not exist. Dropped (and
			// marked final, so the sweep skips it), a payout whose webhooks
			// are lost would never leave SUBMITTED. Polled again at the
			// longest backoff, loudly, as pollSingle does.
			e.log.Error("track: polled payout unknown to Wompi; polled again at the longest backoff", "payoutId", payoutID)
			if err := e.sub.Reschedule(context.WithoutCancel(ctx), payoutID, now.Add(e.cfg.PollMaxBackoff)); err != nil {
				return false, 0, err
			}
			return false, 0, wompiErr(err)
		}
		return retry(err)
	}
	sp, found, err := e.sub.Payout(ctx, payoutID)
	if err != nil {
		return retry(err)
	}
	batchID, origin, paymentType := wp.Reference, wp.OriginAccountID, wp.PaymentType
	if found {
		if batchID == "" {
			batchID = sp.BatchID
		}
		if sp.OriginAccountID != "" {
			origin = sp.OriginAccountID
		}
		if sp.PaymentType != "" {
			paymentType = sp.PaymentType
		}
	}
	allFinal := true
	var firstErr error
	// The events are built as values in one array, their fields that are
	// the same for every transaction of the payout sharing one pointer:
	// a poll that reads the same statuses again (the digest below) emits
	// none of them, and most polls of a pending payout do.
	scs := make([]payout.StatusChange, 0, min(max(wp.ItemCount, 0), maxPollPresize))
	batchRef, payoutRef, railRef := payout.OptString(batchID), payout.OptString(payoutID), wompiRail()
	var digest PollDigest
	digest.Expect(wp.ItemCount)
	for tx, err := range e.cfg.Wompi.Items(ctx, payoutID) {
		if err != nil {
			return retry(err)
		}
		if !digest.Add(tx.ProviderID, tx.ProviderStatus, tx.ID, tx.Reason) {
			continue // read twice (PollDigest.Add): its status is taken once
		}
		st := tx.Status
		if st == "" {
			e.log.Warn("track: unknown transaction status", "payoutId", payoutID, "transactionId", tx.ProviderID, "status", truncate(tx.ProviderStatus, 32))
			allFinal = false
			continue
		}
		if !st.Final() {
			allFinal = false
		}
		if tx.ID == "" {
			e.log.Error("track: polled transaction has no reference", "payoutId", payoutID, "transactionId", tx.ProviderID)
			continue
		}
		scs = append(scs, payout.StatusChange{
			RequestID: tx.ID, BatchID: batchRef, PayoutID: payoutRef,
			TransactionID: payout.OptString(tx.ProviderID), Status: st, AmountInCents: tx.AmountInCents, OriginAccountID: origin,
			OccurredAt: now, Source: payout.SourcePoll, Rail: railRef,
		})
		setReason(&scs[len(scs)-1], failureOf(&tx))
	}
	// A creation time Wompi's answer did not give (the zero time) would
	// make the payout as old as year 1, and a short listing of a final
	// batch beyond ShortListingPatience at its first poll: its age is then
	// unknown, and the patience does not run out.
	age, aged := now.Sub(wp.CreatedAt), wp.CreatedAt.Unix() > 0
	if found && !sp.SubmittedAt.IsZero() && sp.SubmittedAt.Unix() > 0 {
		age, aged = now.Sub(sp.SubmittedAt), true
	}
	if listed := digest.n; wp.ItemCount > listed {
		if wp.Status.Final() && aged && age >= ShortListingPatience {
			// A final batch whose listing is still short this long after
			// it was submitted: Wompi counts a transaction it never lists
			// (one refused at creation), not a copy behind. Kept on the
			// schedule, it would be polled forever.
			e.log.Error("track: final batch's transaction listing still shorter than the batch; taken off the schedule",
				"payoutId", payoutID, "listed", listed, "transactions", wp.ItemCount, "age", age)
		} else {
			// The listing came back shorter than the batch Wompi announces
			// (a server copy behind): the transactions not read may still
			// need their final status, whose webhooks may be lost. The
			// payout stays on the schedule.
			e.log.Warn("track: transaction listing shorter than the batch; polled again", "payoutId", payoutID,
				"listed", listed, "transactions", wp.ItemCount)
			allFinal = false
		}
	}
	// The transactions read the same as at the last complete poll: every
	// transition among them was emitted (or refused) then; skip them.
	sum := digest.String()
	if !found || sp.PollDigest != sum {
		txs := make([]*payout.StatusChange, 0, len(scs))
		adopted, held := &adoptedBatch{payoutID: payoutID, batchID: batchID}, false
		for i := range scs {
			if !found { // no hand-off: its failures may be a payout not adopted's
				other, err := e.followsOther(ctx, adopted, scs[i].RequestID, deref(scs[i].TransactionID), scs[i].Status, wp.CreatedAt)
				if err != nil {
					// This failure waits for the next poll; the batch's
					// other statuses do not.
					firstErr, held = cmpErr(firstErr, err), true
					continue
				}
				if other == otherMayPay {
					allFinal = false // kept back: polled again
				}
				if other != noOther {
					continue
				}
			} else { // the adopted payout: another under its reference may pay
				other, err := e.adoptedTxFailure(ctx, adopted, scs[i].RequestID, deref(scs[i].TransactionID), scs[i].Status)
				if err != nil {
					firstErr, held = cmpErr(firstErr, err), true // as above
					continue
				}
				if other == otherMayPay {
					// Kept back: polled again, its digest not recorded
					// (a poll reading the same statuses judges it again).
					held, allFinal = true, false
				}
				if other != noOther {
					continue
				}
			}
			txs = append(txs, &scs[i])
		}
		for start := 0; start < len(txs); start += pollEmitBatch {
			got, err := e.emitRequests(ctx, txs[start:min(start+pollEmitBatch, len(txs))], since)
			n += got
			if err != nil {
				firstErr = cmpErr(firstErr, err)
			}
		}
		if firstErr == nil && found && !held {
			if err := e.sub.SetPollDigest(ctx, payoutID, sum); err != nil {
				e.log.Warn("track: record poll digest", "payoutId", payoutID, "err", err)
			}
		}
	}
	if batchID != "" && wp.Status.Valid() {
		bc := &payout.BatchStatusChange{
			BatchID: batchID, PayoutID: payout.OptString(payoutID), OriginAccountID: origin,
			PaymentType: e.paymentType(paymentType, payoutID), Schedule: scheduleOf(wp.DispersionAt, wp.Recurring),
			Status: wp.Status, StatusMessage: payout.OptString(wp.StatusMessage),
			TotalAmountInCents: wp.AmountInCents, TransactionCount: int32(wp.ItemCount),
			OccurredAt: now, Source: payout.SourcePoll, Rail: wompiRail(),
		}
		res, err := e.emitBatch(ctx, bc, true, since, nil)
		switch {
		case err != nil:
			firstErr = cmpErr(firstErr, err)
		case res == emitNew:
			n++
		case res == emitReread:
			firstErr = cmpErr(firstErr, errNoReread)
		}
	}
	if firstErr != nil {
		return retry(firstErr)
	}
	if wp.Status.Final() && allFinal {
		return true, n, e.done(ctx, payoutID)
	}
	if d := wp.DispersionAt; !d.IsZero() && d.After(now) {
		// A scheduled batch: nothing moves before its dispersion time.
		return false, n, e.sub.Reschedule(ctx, payoutID, d)
	}
	if aged {
		// A scheduled batch is pending from its dispersion on, not from
		// its submission days before.
		pending := age
		if d := wp.DispersionAt; !d.IsZero() && now.Sub(d) < pending {
			pending = now.Sub(d)
		}
		e.m.pending.observe(rail.Wompi, pending)
	}
	return false, n, e.sub.Reschedule(ctx, payoutID, now.Add(min(backoff(age), e.cfg.PollMaxBackoff)))
}

// ShortListingPatience is how long after its submission a final batch
// whose transaction listing holds fewer transactions than its
// totalTransactions stays on the schedule [ours]: ACH settles within 24 h
// [doc], so a listing still short after three days is Wompi counting
// differently, not a copy behind. The dispatcher takes such a listing as
// the payout's word after it too.
const ShortListingPatience = 72 * time.Hour

// done takes a payout that ended off the schedule, marking it final in the
// hand-off first so the sweep does not bring it back.
func (e *Engine) done(ctx context.Context, payoutID string) error {
	if err := e.sub.MarkFinal(ctx, payoutID); err != nil {
		return err
	}
	return e.sub.Done(ctx, payoutID)
}

// sweepIfDue runs sweepSchedule once per SweepInterval (and on the first
// round), under a lock so replicas do not sweep at the same time.
func (e *Engine) sweepIfDue(ctx context.Context) (int, error) {
	now := e.cfg.Now()
	e.sweepMu.Lock()
	due := e.lastSweep.IsZero() || now.Sub(e.lastSweep) >= e.cfg.SweepInterval
	if due {
		e.lastSweep = now
	}
	e.sweepMu.Unlock()
	if !due {
		return 0, nil
	}
	lock, token := e.cfg.Prefix+"track:sweep-lock", newToken()
	ok, err := e.cfg.Redis.SetNX(ctx, lock, token, 5*time.Minute).Result()
	if err != nil || !ok {
		return 0, err
	}
	defer releaseLock.Run(context.WithoutCancel(ctx), e.cfg.Redis, []string{lock}, token)
	return e.sweepSchedule(ctx, now)
}

// sweepSchedule puts back on the polling schedule, due now, every payout
// the hand-off records that is neither scheduled nor marked final. The
// rebuild (ensureSchedule) covers a Redis that lost everything, ready
// marker included; this covers a partial loss that dropped a payout's
// schedule entry and kept the marker, after which nothing would poll that
// payout again. A payout that ended before MarkFinal existed is polled
// once more and then marked.
func (e *Engine) sweepSchedule(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := e.sub.Unscheduled(ctx, func(ids []string) error {
		for _, id := range ids {
			if err := e.sub.Schedule(ctx, id, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if n > 0 {
		e.log.Warn("track: payouts missing from the polling schedule put back", "payouts", n)
	}
	if err != nil {
		return n, fmt.Errorf("track: sweep schedule: %w", err)
	}
	return n, nil
}

// FirstPollInterval is the pause between polls of a payout in its first
// minute, and how long after the hand-off the first poll comes when the
// dispatcher's listing served as the first one (PollDigest).
const FirstPollInterval = 10 * time.Second

// pollEmitBatch is how many polled transitions are emitted together.
const pollEmitBatch = 500

// maxPollPresize caps the events a poll allocates room for up front from
// the payout's transaction count, a number the provider gives.
const maxPollPresize = 5000

// PollDigest sums up a payout's transactions as one poll read them: the same
// set of (id, status, reference, failure code) gives the same digest, in any
// order. A poll whose transactions read as the digest the hand-off holds
// (submitted.Payout.PollDigest) emits nothing for them: the dispatcher
// records the digest of its own listing once it emitted each transaction's
// PENDING, so that listing serves as the first poll.
type PollDigest struct {
	n        int
	sum, xor uint64
	seen     map[string]struct{} // the provider ids added
}

// Add adds one transaction: its provider id, provider status, reference
// and failure code, as rail.Payout holds them. It reports false, and adds
// nothing, for a provider id already added: offset pages over a sort key
// the payout's transactions tie on (a batch's transactions share one
// createdAt) can read one transaction twice and another never, and a count
// that took the repeat would read such a listing as complete (N returns
// how many were added). A transaction without a provider id is always
// added.
func (d *PollDigest) Add(providerID, providerStatus, reference, failure string) bool {
	if providerID != "" {
		if _, ok := d.seen[providerID]; ok {
			return false
		}
		if d.seen == nil {
			d.seen = make(map[string]struct{}, 64)
		}
		d.seen[providerID] = struct{}{}
	}
	h := fnv.New64a()
	for _, f := range [...]string{providerID, providerStatus, reference, failure} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	v := h.Sum64()
	d.n++
	d.sum += v
	d.xor ^= v*0x9E3779B97F4A7C15 + 1
	return true
}

// Expect makes room for n transactions (at most maxPollPresize), so that
// the record of the ids added does not grow by steps: call it before the
// first Add, with the count the provider gives.
func (d *PollDigest) Expect(n int) {
	if d.seen == nil && n > 0 {
		d.seen = make(map[string]struct{}, min(n, maxPollPresize))
	}
}

// N is how many transactions were added, each provider id once.
func (d *PollDigest) N() int { return d.n }

func (d *PollDigest) String() string {
	return fmt.Sprintf("%d-%x-%x", d.n, d.sum, d.xor)
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// backoff is the pause before the next poll of a payout of the given age:
// frequent at first (most settle within the hour at the same bank), then
// down to every 30 min for ACH, which takes up to 24 h [doc].
func backoff(age time.Duration) time.Duration {
	switch {
	case age < time.Minute:
		return FirstPollInterval
	case age < 5*time.Minute:
		return 30 * time.Second
	case age < 30*time.Minute:
		return time.Minute
	case age < 2*time.Hour:
		return 5 * time.Minute
	case age < 6*time.Hour:
		return 15 * time.Minute
	}
	return 30 * time.Minute
}

// rebuildStatuses are the non-final batch statuses whose payouts the
// rebuilt schedule polls: PENDING, PARTIAL_PAYMENT and NOT_APPROVED, all
// documented filter values [doc]. The anti-fraud hold is only in an SDK
// [sdk]: it is asked for separately (rebuildSDKStatuses), and a refusal of
// that filter value is logged, never fatal.
var rebuildStatuses = []payout.BatchStatus{payout.BatchPending, payout.BatchPartialPayment, payout.BatchNotApproved}

// rebuildSDKStatuses are filter values only an SDK names [sdk].
var rebuildSDKStatuses = []payout.BatchStatus{payout.BatchAFEOnHold}

// rebuildPendingLookback is how far back the rebuild's listing without a
// status filter looks for Wompi payouts not yet final (the dispatcher's
// default DEDUPE_WINDOW): a walk by status may skip one while others
// settle, this listing does not.
const rebuildPendingLookback = 30 * 24 * time.Hour

// rebuildTakes reports whether the rebuild puts b, listed without a status
// filter, back on the schedule: not a batch made in Wompi's dashboard
// (PENDING_APPROVAL, never ours), nor a final one created and dispersed
// before RebuildLookback (all of them where it is negative); one without a
// creation time is taken. A scheduled batch is paid at its dispersion,
// days after its creation perhaps: its payment's webhooks, lost with
// Redis, are as recent as its dispersion.
func (e *Engine) rebuildTakes(b rail.Batch, now time.Time) bool {
	from := now.Add(-e.cfg.RebuildLookback)
	switch {
	case b.Status == payout.BatchPendingApproval:
		return false
	case !b.Status.Final():
		return true
	case e.cfg.RebuildLookback <= 0:
		return false
	default:
		return b.CreatedAt.IsZero() || !b.CreatedAt.Before(from) || !b.DispersionAt.IsZero() && !b.DispersionAt.Before(from)
	}
}

// rebuildFromBatchTopic puts back on the schedule, after a Redis loss,
// every Wompi payout whose last status on the batch status topic (read
// from rebuildPendingLookback, or RebuildLookback if longer, ago) is not
// final, or is final and occurred within RebuildLookback. Wompi's listing
// gives a batch no update time: a batch held (or pending) longer than
// RebuildLookback, paid and its webhooks lost just before the loss, is
// listed final and too old for rebuildTakes, and its requests' final
// statuses were never emitted. The tracker had emitted it as not final
// there, and that record outlives Redis. Only batches still pending, or
// final in the last RebuildLookback, are taken: not every final one of the
// window. It returns how many payouts were scheduled.
func (e *Engine) rebuildFromBatchTopic(ctx context.Context, now time.Time) (int, error) {
	topic := e.cfg.Topics.BatchStatus
	ends, err := kadm.NewClient(e.producer).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("list the partitions of %s (TOPIC_BATCH_STATUS; the tracker needs Read and Describe on it): %w", topic, err)
	}
	type last struct {
		status payout.BatchStatus
		at     time.Time
	}
	byPayout := map[string]last{}
	from := now.Add(-max(e.cfg.RebuildLookback, rebuildPendingLookback))
	parts := slices.Sorted(maps.Keys(ends[topic]))
	if _, err := events.ScanFrom(ctx, e.readOpts(), topic, parts, from, nil, func(rec *kgo.Record) error {
		var bc payout.BatchStatusChange
		if err := e.cfg.Codec.DecodeBatchStatusChange(rec.Value, &bc); err != nil {
			if events.Permanent(err) {
				return nil // not an event of ours
			}
			return fmt.Errorf("decode a batch status at offset %d/%d: %w", rec.Partition, rec.Offset, err)
		}
		if bc.PayoutID == nil || *bc.PayoutID == "" || bc.Rail != nil && *bc.Rail != "" && *bc.Rail != string(rail.Wompi) {
			return nil
		}
		// A batch's records are on one partition (keyed by batchId), in
		// the order they were written.
		byPayout[*bc.PayoutID] = last{status: bc.Status, at: bc.OccurredAt}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("read %s (TOPIC_BATCH_STATUS; the tracker needs Read and Describe on it): %w", topic, err)
	}
	n := 0
	for _, id := range slices.Sorted(maps.Keys(byPayout)) {
		l := byPayout[id]
		if l.status.Final() && (e.cfg.RebuildLookback <= 0 || l.at.Before(now.Add(-e.cfg.RebuildLookback))) {
			continue
		}
		if err := e.sub.Schedule(ctx, id, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// rebuildKeyTTL bounds how long a rebuild of the schedule may take and
// still mark it ready (submitted.BeginRebuild).
const rebuildKeyTTL = 24 * time.Hour

// releaseLock deletes a lock only if it still holds our token.
var releaseLock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// ensureSchedule rebuilds the polling schedule from Wompi when its ready
// marker is missing (a fresh or flushed Redis). One replica rebuilds under
// a lock; the others carry on with what is scheduled. A rebuild lists the
// single-payout rails this replica has credentials for; a rail it could
// not list (submitted.UnlistedRails) is listed by the next replica that
// has the rail, alone, even after the schedule was marked ready.
func (e *Engine) ensureSchedule(ctx context.Context) (bool, error) {
	ready, err := e.sub.Ready(ctx)
	if err != nil {
		return false, fmt.Errorf("track: schedule marker: %w", err)
	}
	var only []rail.Name // with ready: the unlisted rails this replica has
	if ready {
		unlisted, err := e.sub.UnlistedRails(ctx)
		if err != nil {
			return false, fmt.Errorf("track: schedule marker: %w", err)
		}
		for _, n := range unlisted {
			if name := rail.Name(n); name != rail.Wompi && e.single(name) != nil {
				only = append(only, name)
			}
		}
		if len(only) == 0 {
			return false, nil
		}
	}
	lock, token := e.cfg.Prefix+"track:rebuild-lock", newToken()
	ok, err := e.cfg.Redis.SetNX(ctx, lock, token, 5*time.Minute).Result()
	if err != nil || !ok {
		return false, err
	}
	defer releaseLock.Run(context.WithoutCancel(ctx), e.cfg.Redis, []string{lock}, token)
	// Redis may lose its data again while the rails are listed (a flush, a
	// restart, a failover): the payouts put back before that are gone, and
	// the schedule is not complete. Marked ready only if nothing was lost
	// since here (MarkReadyAfter), else rebuilt again next round.
	gen, err := e.sub.BeginRebuild(ctx, token, rebuildKeyTTL)
	if err != nil {
		return false, fmt.Errorf("track: rebuild schedule: %w", err)
	}
	now := e.cfg.Now()
	n := 0
	if ready {
		singles, err := e.rebuildSingles(ctx, now, only)
		if err != nil {
			return false, fmt.Errorf("track: rebuild schedule: %w", err)
		}
		marked, err := e.sub.MarkRailsReadyAfter(ctx, gen, false, railStrings(only), nil)
		if err != nil || !marked {
			return false, err
		}
		e.m.rebuilds.Inc()
		e.log.Info("track: polling schedule of rails the last rebuild could not list rebuilt", "rails", only, "single_payouts", singles)
		return true, nil
	}
	schedule := func(since time.Time, statuses []payout.BatchStatus) error {
		for b, err := range e.cfg.Wompi.BatchesByStatus(ctx, since, statuses...) {
			if err != nil {
				return err
			}
			if len(statuses) == 0 && !e.rebuildTakes(b, now) {
				continue
			}
			if b.ProviderID == "" {
				e.rebuildSkipsIDless(rail.Wompi, b.Reference)
				continue
			}
			if err := e.sub.Schedule(ctx, b.ProviderID, now); err != nil {
				return err
			}
			n++
		}
		return nil
	}
	if err := schedule(time.Time{}, rebuildStatuses); err != nil {
		return false, fmt.Errorf("track: rebuild schedule: %w", err)
	}
	sdkOnly := func(since time.Time, statuses []payout.BatchStatus) error {
		err := schedule(since, statuses)
		var re *rail.Error
		if errors.As(err, &re) && re.HTTPStatus >= 400 && re.HTTPStatus < 500 {
			e.log.Warn("track: rebuild: Wompi refuses a status filter only an SDK names; skipped", "statuses", statuses, "err", err)
			return nil
		}
		return err
	}
	if err := sdkOnly(time.Time{}, rebuildSDKStatuses); err != nil {
		return false, fmt.Errorf("track: rebuild schedule: %w", err)
	}
	// Every payout created within rebuildPendingLookback (or
	// RebuildLookback, if longer), whatever its status (the rail lists from
	// since's Bogota day on), of which rebuildTakes keeps those not final
	// and the final ones within RebuildLookback, whose webhooks may have
	// been lost with Redis. A listing by status shrinks while it is walked:
	// a payout that settles on a page already read moves every later one up
	// a place, so the walks above can skip a payout still pending. A
	// listing without a status filter only grows (payouts are never
	// deleted), and its walk skips none.
	if err := schedule(now.Add(-max(e.cfg.RebuildLookback, rebuildPendingLookback)), nil); err != nil {
		return false, fmt.Errorf("track: rebuild schedule: %w", err)
	}
	held, err := e.rebuildFromBatchTopic(ctx, now)
	if err != nil {
		return false, fmt.Errorf("track: rebuild schedule: %w", err)
	}
	n += held
	singles, err := e.rebuildSingles(ctx, now, nil)
	if err != nil {
		return false, fmt.Errorf("track: rebuild schedule: %w", err)
	}
	var listed, unlisted []string
	for _, name := range rail.Names {
		switch {
		case name == rail.Wompi:
		case e.single(name) != nil:
			listed = append(listed, string(name))
		default:
			unlisted = append(unlisted, string(name))
		}
	}
	if len(unlisted) > 0 {
		e.log.Info("track: polling schedule rebuilt without the rails this tracker has no credentials for; a replica with them lists them",
			"rails", unlisted)
	}
	marked, err := e.sub.MarkRailsReadyAfter(ctx, gen, true, listed, unlisted)
	if err != nil {
		return false, err
	}
	if !marked {
		e.log.Warn("track: Redis lost data while the polling schedule was rebuilt; it is rebuilt again", "payouts", n, "single_payouts", singles)
		return false, nil
	}
	e.m.rebuilds.Inc()
	e.log.Info("track: polling schedule rebuilt from the rails", "payouts", n, "single_payouts", singles)
	return true, nil
}

func railStrings(names []rail.Name) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out
}

// wompiRail is the rail of every event about a Wompi payout (single.go
// names the other rails').
func wompiRail() *string {
	w := string(rail.Wompi)
	return &w
}
