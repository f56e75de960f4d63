package dispatch

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// drop is a transaction left out of the POST: REJECTED with its reason, or,
// for a republished copy (DUPLICATE_REQUEST), a DLQ record and no status
// event (the request's one lifecycle belongs to the copy that is paid).
type drop struct {
	idx     int
	reason  payout.Reason
	message string
	eventID string
	// unbanked: verdictUnbanked (an earlier attempt kept the payee, and
	// its POST may have carried it).
	unbanked bool
}

// job is one attempt at one batch, from its claim to its outcome.
type job struct {
	e    *Engine
	b    *payout.Batch
	src  *kgo.Record // the batch record (DLQ headers); nil in some tests
	log  *slog.Logger
	soft context.Context // waits and anything before the POST
	hard context.Context // the POST and what follows its success
	// stop ends when the worker is stopped (a drain, a revoke): a produce
	// then stops waiting for brokers that do not answer (produceSync).
	stop  context.Context
	epoch string
	acct  string
	owner string // this attempt: leases are exclusive even between workers of one replica
	// leaseSeen is when the last Redis call that confirmed this job's lease
	// (its claim, each renewal, each Wompi attempt's epoch-checked step)
	// started, as the engine's monotonic clock reads it (Engine.since): see
	// leaseFresh.
	leaseSeen atomic.Int64

	// firstPostAt is when a POST of this batch first went out (zero when
	// none did): the idempotency key's age, and the proof that an earlier
	// attempt may have reached Wompi.
	firstPostAt time.Time
	// lastPost is when this job's latest POST went out (wall clock; zero
	// when it sent none). Until RecoveryGrace after it, that POST may still
	// be applied (its answer lost, or Go's transport replaying it), so no
	// lookup proves the batch absent before then: lookupSettled.
	lastPost time.Time
	// stale: the claim found the record stale (claim.stale); the batch
	// was looked up before any POST, and the POST's transition clears the
	// mark (the record is then this epoch's again).
	stale bool
	// claimedAt is when the job's claim was granted (wall clock): every
	// POST of an earlier attempt started before it.
	claimedAt time.Time
	// earlierPost: the claim found a POST of an earlier attempt (its
	// firstPostAt), which may land until the slowest live replica's
	// takeover wait after the claim (lookupSettled).
	earlierPost bool

	// statusSince is the tracker's Redis-loss marker taken when the job
	// began, before anything it emits was observed (track.Gate).
	statusSince string
	// epochBegan is when the recovery of the job's epoch began, after a
	// loss of our state; zero for a first start's epoch (rejectedOnTopic).
	epochBegan time.Time
	// foundAfterLoss: the claim record was unproved, yet Wompi already held the
	// batch: Redis lost our records after an earlier POST, and the
	// tracker's statuses for the batch may have been lost with them.
	foundAfterLoss bool
	// created: the payout id is the answer to this attempt's own POST (201),
	// not a payout found by reference and adopted (compareAdopted).
	created bool
	// keyHeld: Wompi answered a POST of this attempt 409 EXC_022 (recorded
	// in the batch record for later attempts: keyHeldField).
	keyHeld bool

	keep    []int    // positions of the transactions to pay
	bankIDs []string // per position
	// unposted, per position: dedupe indexed the requestId for the first
	// time in a complete epoch (newPayeeProof); nil when none was.
	unposted []bool
	// complete: the epoch was complete at the dedupe.
	complete bool
	// indexedBefore: the dedupe found a kept requestId already indexed
	// by an earlier attempt of the batch (dedupeBefore).
	indexedBefore bool
	// echoes, by position: the forms other than its own a single-payout
	// rail may hold a payee's id in (a recovery listed it so:
	// dedupeScript); looked up too before any POST (echoForms).
	echoes map[int]string
	// listed, by requestId: the payees whose index entry an attempt of
	// the batch took over from a recovery's mark (listedPrefix): no
	// DEFERRED for them, nor a SUBMITTED when their lookup finds them.
	listed map[string]bool
	// unlisted, by position: the listed payees whose field payOne cleared
	// (looked up absent by this attempt, then posted): runSingle's.
	unlisted []bool
	drops    []drop
	res      ratelimit.Reservation
	reserved bool // res is held in Redis

	pacer *ratelimit.Pacer // a single-payout batch's reserved API calls
	sday  *singleDay       // a single-payout batch's POSTs against its reservation's day
	// railDeadline is when the batch stops retrying a failing rail (a
	// lookup, the health gate, a POST) and waits on the deferred topic
	// instead, so that one rail's outage holds no other rail's batches.
	railDeadline time.Time
	// unsettled: the rail may hold the batch although this attempt could
	// not find out (a lookup that kept failing on an unproved claim).
	unsettled bool
	screened  bool // keep and drops are known (step 3 ran)
	// unbanked: screening dropped for an unknown bank a requestId an
	// earlier attempt of the batch had kept, and whose POST may have
	// carried it (verdictUnbanked).
	unbanked bool
	// absentProven: the reconcile's lookupSettled proved that Wompi holds
	// no batch of an earlier attempt (an unbanked drop is then final).
	absentProven bool
	// copyOnly: deferBatch writes the deferred copy without a DEFERRED
	// per request (deferRail of a batch an earlier attempt may have
	// settled in part).
	copyOnly bool
	// ungated: the job produced statuses no status gate holds (the
	// batch's REJECTED: rejectAs, endPoisoned; a DEFERRED before any
	// POST: deferBatch); given up unanswered, they must not land once the
	// lease is lost (holdLease). A single-payout batch's REJECTED and
	// drops count too (finishSingle, dropRefusedBefore): the status gate
	// holds no key of a refused payee; so do an unknown bank's REJECTED
	// ended alone (nothingToPay) or beside a deferral's DEFERRED
	// (deferBatch), which a next attempt that Redis lost them for may
	// follow with the payee's SUBMITTED. finish's are left out: the next
	// attempt adopts that payout without posting the payee again, and the
	// REJECTED is then the payee's only final status.
	ungated bool
	// refusedOnTopic, by requestId: the payees of a single-payout batch
	// first written before a Redis loss whose REJECTED a dispatcher wrote
	// for this batch is on the status topic (payeesRejectedOnTopic). One
	// its lookup proves absent is ended REJECTED again, never posted
	// (payOne).
	refusedOnTopic map[string]refusal
	// looked: what this attempt's look on the status topic proved
	// (payeesRejectedOnTopic), carried by its deferred copy
	// (lookedHeader).
	looked *lookSpan

	// landing guards what follows a produce of this job that may still
	// write its records after the job ends (job.produceEach): perhaps
	// tells that one did, late holds those a stopped worker gave up
	// unanswered, with what to do once their results come. The batch's
	// lease is then kept (holdLease).
	landing struct {
		sync.Mutex
		perhaps bool
		late    []unsettled
	}
}

// unsettled is a produce of a job given up unanswered (produceSync): its
// results to come, and settle, when not nil, to run with them before the
// batch's lease is let go (holdLease). closed tells that the client's
// close failed some of the records: perhaps written, they are no longer
// sent.
type unsettled struct {
	results *lateResults
	settle  func(res kgo.ProduceResults, closed bool)
}

// process runs the batch through the state machine (see the package doc)
// to a durable outcome: submitted, deferred, rejected or nothing to do.
// errStale asks the caller to start again from the claim; any other error
// is retried by the caller with backoff.
func (e *Engine) process(soft context.Context, b *payout.Batch, src *kgo.Record, log *slog.Logger) error {
	if len(b.Transactions) == 0 {
		log.Warn("dispatch: empty batch: nothing to pay")
		e.m.batches.WithLabelValues("skipped").Inc()
		return nil
	}
	// Step 1: the Redis epoch (recovery when Redis lost our state).
	epoch, epochBegan, err := e.ensureEpoch(soft)
	if err != nil {
		return err
	}
	statusSince, err := e.gate.Epoch(soft)
	if err != nil {
		return err
	}
	j := &job{e: e, b: b, src: src, log: log, soft: soft, hard: e.hard, stop: soft, epoch: epoch, acct: b.OriginAccountID,
		owner: e.cfg.InstanceID + "/" + e.boot + "/" + strconv.FormatInt(e.jobSeq.Add(1), 10), statusSince: statusSince,
		epochBegan: epochBegan}

	// Step 2: claim with a lease.
	t := time.Now()
	var c claim
	for {
		began := time.Now()
		if c, err = e.st.claim(j.hard, j.owner, epoch, b.BatchID, railName(b)); err != nil {
			return err
		}
		j.sawLease(began)
		switch c.code {
		case "noepoch":
			// Redis lost our state, or a recovery started, since step 1:
			// nothing was written; start over from the epoch.
			return fmt.Errorf("%w: epoch %s is no longer current and ready", errStale, epoch)
		case "busy":
			if err := sleep(soft, min(c.wait+10*time.Millisecond, e.cfg.PollInterval)); err != nil {
				return err
			}
			continue
		}
		break
	}
	j.claimedAt, j.stale, j.listed = time.Now(), c.stale, c.listed
	if c.code == "final" {
		log.Info("dispatch: batch already handled", "state", c.state)
		e.m.batches.WithLabelValues("skipped").Inc()
		return nil
	}
	leaseCtx, stopLease := context.WithCancelCause(soft)
	j.soft = leaseCtx
	// The lease is renewed until the job returns, not only while its
	// worker runs: a stopped worker's job still finishes what follows a
	// POST, or waits for a produce's answer, and owns the batch meanwhile.
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(soft))
	renewDone := make(chan struct{})
	go j.keepLease(renewCtx, stopLease, renewDone)
	defer func() {
		stopRenew()
		stopLease(nil)
		<-renewDone
		j.letGo()
	}()

	t = e.m.stage("claim", t)
	if r := b.Rail; r != nil && rail.Name(*r) != rail.Wompi {
		cl := e.cfg.Singles[rail.Name(*r)]
		if cl == nil {
			return j.deferRail(c, rail.Name(*r))
		}
		err = j.runSingle(c, cl)
	} else {
		err = j.run(c, t)
	}
	if p := asPermanent(err); p != nil {
		err = j.poison(p)
		if errors.Is(err, errPatience) && railName(b) == rail.Wompi {
			// poison's lookup met a Wompi failing past its patience:
			// the batch waits like any other (run), rather than be
			// retried in place and posted again at once.
			return j.unavailable(c, err)
		}
	}
	return err
}

// letGo ends the job's hold on the batch once it returned: the lease is
// released at once, so that another replica may take over, unless a
// produce of the job may still write its records (holdLease).
func (j *job) letGo() {
	e := j.e
	j.landing.Lock()
	perhaps, late := j.landing.perhaps, j.landing.late
	j.landing.Unlock()
	if e.crashed.Load() {
		// A crash (tests): nothing is released, and the status keys stop
		// being renewed, to run out after one lease as a dead process's.
		for _, u := range late {
			if u.settle != nil {
				u.settle(nil, true)
			}
		}
		return
	}
	if perhaps {
		e.settling.Go(func() { j.holdLease(late) })
		return
	}
	_ = e.st.releaseLease(context.WithoutCancel(j.hard), j.owner, j.b.BatchID)
}

// produce writes recs (Engine.produce) for the job.
func (j *job) produce(recs ...*kgo.Record) error {
	_, _, err := j.produceEach(nil, recs...)
	return err
}

// produceEach is the engine's produceEach for the job. A produce that
// fails with its records perhaps written (perhapsWritten) is noted: its
// records may land after the job ends, and the batch's lease is then kept
// (holdLease). When a stopped worker gave it up unanswered (late), the
// lease is kept until franz-go has its results, and settle, when not
// nil, runs with them first.
func (j *job) produceEach(settle func(res kgo.ProduceResults, closed bool), recs ...*kgo.Record) (res kgo.ProduceResults, late bool, err error) {
	res, l, err := j.e.produceEach(j.hard, j.stop, recs...)
	if perhapsWritten(err) {
		j.landing.Lock()
		j.landing.perhaps = true
		if l != nil {
			j.landing.late = append(j.landing.late, unsettled{results: l, settle: settle})
		}
		j.landing.Unlock()
	}
	return res, l != nil, err
}

// holdLease keeps the batch's lease of a job that ended with records
// perhaps still to be written: given up unanswered by a stopped worker
// (a revoke: the client runs on, and franz-go sends them until the brokers
// answer), or failed by the client's close. Another worker that took the
// batch meanwhile would emit its statuses, and a DEFERRED, a REJECTED or a
// deferred copy of this job's could land after them: a DEFERRED after the
// next attempt's SUBMITTED. The lease is renewed until franz-go has every
// result, then released; after the client's close nothing more is sent,
// and it is left to run out (one lease, as the status keys are). Past
// silentBrokersLimit the engine closes the client itself (silence), so
// that no batch waits on brokers that do not answer this replica. Each
// produce's settle (the status keys it holds) runs with its results
// before the lease is let go.
func (j *job) holdLease(late []unsettled) {
	e := j.e
	ctx := context.WithoutCancel(j.hard)
	began := time.Now()
	renewing, told := true, false
	renew := func() {
		if !renewing || e.crashed.Load() {
			return
		}
		err := e.st.renew(ctx, j.owner, j.epoch, j.b.BatchID)
		switch {
		case errors.Is(err, errStale):
			// Redis lost the record, or its lease ran out while Redis did
			// not answer: another worker may take the batch before the
			// records land.
			j.log.Error("dispatch: lease lost while records given up unanswered may still land; a status of the batch's next attempt may come before them", "err", err)
			renewing = false
			if j.ungated {
				// The record may be lost with Redis (a refusal recorded
				// in it too), and a REJECTED landing after the recovery's
				// scan (rejectedOnTopic), or a DEFERRED no gate holds,
				// would follow the batch's next POST. Closed before any
				// recovery can end, the client sends nothing it gave up.
				e.silence()
			}
		case err != nil:
			j.log.Warn("dispatch: renew the lease of a batch whose records may still land", "err", err)
		}
		switch held := time.Since(began); {
		case held > e.silentLimit:
			e.silence()
		case !told && held > e.produceTimeout:
			told = true
			j.log.Error("dispatch: the brokers have not answered records given up unanswered; the batch stays with this replica until they do",
				"held", held.Round(time.Second), "client_closed_after", e.silentLimit)
		}
	}
	renew() // keepLease's last renewal may have failed
	t := time.NewTicker(renewEvery(e.cfg.LeaseTTL))
	defer t.Stop()
	closed := false
	for _, u := range late {
		for waiting := true; waiting; {
			select {
			case <-u.results.done:
				waiting = false
			case <-t.C:
				renew()
			}
		}
		c := u.results.closed()
		closed = closed || c
		if u.settle != nil {
			u.settle(u.results.res, c)
		}
	}
	if closed || len(late) == 0 || !renewing || e.crashed.Load() {
		return
	}
	_ = e.st.releaseLease(ctx, j.owner, j.b.BatchID)
}

// railRetry is how long a batch of a rail the dispatcher cannot pay
// through waits before it is looked at again.
const railRetry = 15 * time.Minute

// The causes of a RAIL_NOT_CONFIGURED deferral (the cause label of
// payouts_dispatcher_rail_deferred_total).
const (
	// railNotEnabled: this dispatcher has no credentials for the rail.
	railNotEnabled = "not_enabled"
	// railNotImplemented: the rail is enabled (Config.Rails) but the engine
	// was given no client for it (Config.Singles): a wiring bug.
	railNotImplemented = "not_implemented"
	// railUnknown: the batch names a rail the contract does not know
	// (ingest refuses those; a hand-made or future record).
	railUnknown = "unknown"
)

// deferRail defers, whole and untouched, a claimed batch of a rail other
// than Wompi: it is never paid through another rail than its own, and
// nothing is lost. It waits on the deferred topic, DEFERRED with
// RAIL_NOT_CONFIGURED, and is looked at again every railRetry: once the
// rail is configured it proceeds. The cause (not enabled, enabled but not
// implemented, unknown rail) is in the reason message, the log and the
// metric's label, so that an operator knows whether credentials are
// missing or the release is.
//
// A batch an earlier attempt may have settled in part (c: a POST, a
// refusal or a posting state on its record; or first written before a
// Redis loss, which may have taken such a record) may hold payees whose
// status is already SUBMITTED, REJECTED or later, which a DEFERRED must not
// follow: only its copy is written, and the replica that holds the rail
// emits what each payee's lookup, or recorded refusal, says.
func (j *job) deferRail(c claim, name rail.Name) error {
	e := j.e
	label, cause, why := string(name), railNotEnabled, "the dispatcher has no credentials for rail "+string(name)
	switch {
	case !name.Valid():
		label, cause, why = railUnknown, railUnknown, "the batch names no rail this dispatcher knows"
	case e.rails[name]:
		cause, why = railNotImplemented, "rail "+string(name)+" is enabled in the dispatcher, but it was given no client for it"
	}
	e.m.railDeferred.WithLabelValues(label, cause).Inc()
	j.log.Warn("dispatch: batch deferred: its rail cannot be paid through here", "rail", label, "cause", cause,
		"reason", rail.ReasonRailNotConfigured, "retry_in", railRetry)
	// What the duplicate index says of each payee is read back (a peek:
	// nothing written): a republished copy of a request another batch
	// owns (paid, perhaps final already) goes to the DLQ, never DEFERRED,
	// as the replica with the rail would drop it; a payee without an
	// entry waits in the copy.
	whole, err := j.dedupe(true)
	if err != nil {
		return err
	}
	if whole && len(j.keep) == 0 {
		return j.nothingToPay()
	}
	j.copyOnly = !c.firstPostAt.IsZero() || len(c.refused) > 0 || c.state == statePosting || c.state == statePosted ||
		j.readBeforeTheLoss()
	return j.deferBatch(rail.ReasonRailNotConfigured, e.now().Add(railRetry), false, why)
}

// run takes a claimed Wompi batch through steps 3 to 9. A Wompi that keeps
// failing (lookups, the health gate, POSTs) for longer than RailPatience
// does not hold the partition: the batch waits on the deferred topic
// (wompiUnavailable) and the partition's next batches, of any rail, go on.
func (j *job) run(c claim, t time.Time) error {
	j.railDeadline = time.Now().Add(j.e.cfg.RailPatience)
	err := j.pay(c, t)
	if errors.Is(err, errPatience) {
		return j.unavailable(c, err)
	}
	return err
}

// unavailable takes a Wompi batch whose Wompi kept failing past the
// dispatcher's patience (cause) before it could end. Its REJECTED may be on
// the topic, and are never followed by a DEFERRED: one refused in an
// earlier attempt (rejectedBefore) is retried in place, and so is one whose
// refusal Redis lost, found on the batch status topic (rejectedOnTopic).
// That one is not ended here: Wompi's word comes first, and a REJECTED
// that landed late may be of a batch Wompi holds. Its next attempts screen
// it, look it up by reference and look for it again, as pay does; it ends
// once Wompi answers. Any other batch waits on the deferred topic
// (wompiUnavailable).
func (j *job) unavailable(c claim, cause error) error {
	if len(c.refused) > 0 {
		return cause
	}
	if j.firstPostAt.IsZero() && j.readBeforeTheLoss() && (!j.screened || len(j.keep) > 0) {
		// No POST of an attempt since the loss: all of them looked for
		// the REJECTED first, and found none, or did not get that far.
		_, found, err := j.rejectedOnTopic()
		if err != nil {
			return fmt.Errorf("%w (after: %v)", err, cause)
		}
		if found {
			j.log.Warn("dispatch: the batch was rejected before a Redis data loss (its REJECTED is on the batch status topic), and Wompi is failing: retried in place until Wompi answers, never DEFERRED")
			return cause
		}
	}
	return j.wompiUnavailable(c, cause)
}

// wompiUnavailable defers a batch whose Wompi kept failing past the
// dispatcher's patience: DEFERRED RAIL_UNAVAILABLE, retried after
// RailRetry. A batch no POST of which went out gives its reservation back.
// One whose POST may have landed keeps it (the retry's reservation finds it
// held) and is looked up by reference before anything else when it comes
// back, like any batch with a first POST; its DEFERRED goes through the
// status gate, because the tracker may already have emitted a status of
// Wompi's for it.
func (j *job) wompiUnavailable(c claim, cause error) error {
	e := j.e
	j.unsettled = c.unproved() && j.firstPostAt.IsZero()
	release := j.reserved && j.firstPostAt.IsZero()
	j.log.Warn("dispatch: Wompi kept failing past the dispatcher's patience: the batch waits on the deferred topic",
		"patience", e.cfg.RailPatience, "retry_in", e.railRetryAfter(j.b.Attempt), "maybe_posted", !j.firstPostAt.IsZero(), "err", cause)
	if !j.screened {
		// Screening has not run (no bank table). What an earlier attempt
		// of the batch indexed is read back (a peek: no bank ids needed,
		// nothing written): a request it dropped (an unknown bank's, whose
		// REJECTED is perhaps on the topic already; another batch's copy)
		// gets no DEFERRED after it, and its drop is emitted again under
		// the same eventId, even when some entry is gone (a payee whose
		// entry is missing waits in the copy). A batch no attempt indexed
		// waits whole.
		whole, err := j.dedupe(true)
		if err != nil {
			return fmt.Errorf("%w (after: %v)", err, cause)
		}
		if whole && len(j.keep) == 0 && j.firstPostAt.IsZero() && c.state != statePosting && c.state != statePosted {
			return j.nothingToPay()
		}
		if len(j.keep) == 0 {
			j.keep, j.drops = j.keep[:0], j.drops[:0]
			for i := range j.b.Transactions {
				j.keep = append(j.keep, i)
			}
		}
	}
	if errors.Is(cause, errKeyHeld) {
		return j.deferBatch(payout.ReasonPayoutNotVisible, e.now().Add(e.cfg.LookupPatience), release,
			"Wompi holds the idempotency key but does not list the payout by reference")
	}
	return j.deferBatch(rail.ReasonRailUnavailable, e.now().Add(e.railRetryAfter(j.b.Attempt)), release,
		"Wompi kept failing for longer than the dispatcher's patience; looked up again before any POST")
}

// railRetryAfter is how long a batch deferred RAIL_UNAVAILABLE waits, at
// its attempt: RailRetry, doubled at each attempt up to 16 times it.
func (e *Engine) railRetryAfter(attempt int32) time.Duration {
	return e.cfg.RailRetry << min(max(attempt, 0), 4)
}

// pay is run's body.
func (j *job) pay(c claim, t time.Time) error {
	e, b, log := j.e, j.b, j.log
	j.firstPostAt, j.earlierPost = c.firstPostAt, !c.firstPostAt.IsZero()
	payoutID := c.payoutID
	if len(c.refused) > 0 && payoutID == "" {
		// An earlier attempt recorded a refusal (below): its dedupe
		// indexed every requestId, an unknown bank's as rejected, and its
		// verdicts are read back (a peek, which writes nothing) without
		// the bank directory, so that a batch that will not be posted
		// does not wait on GET /banks. An entry gone (run out, or marked
		// by a recovery), or no kept request refused, has the batch
		// screened in full.
		whole, err := j.dedupe(true)
		if err != nil {
			return err
		}
		_, again := j.rejectedBefore(c)
		j.screened = whole && again
	}
	if !j.screened {
		// Step 3: banks, then duplicates (every requestId is indexed; an
		// unknown bank's as rejected).
		if err := j.resolveBanks(); err != nil {
			return err
		}
		if _, err := j.dedupe(false); err != nil {
			return err
		}
		j.screened = true
	}
	t = e.m.stage("screen", t)

	if r, ok := j.rejectedBefore(c); ok && payoutID == "" {
		// An earlier attempt's POST was refused (reject) or failed for
		// good (poison), and a lookup found nothing: its REJECTED may be
		// on the topic already. The same ones again, never a POST after
		// them.
		log.Info("dispatch: the batch was refused or failed for good in an earlier attempt: ending it the same way again",
			"code", r.code, "failed", r.poison)
		j.res, j.reserved = newReservation(b, j.acct, j.keptAmount(), e.now()), true // Release is safe to repeat
		if r.poison {
			return j.endPoisoned(payout.Reason(r.code), r.message)
		}
		return j.rejectAs(r)
	}
	if len(j.keep) == 0 && c.state != statePosted && c.state != statePosting && c.firstPostAt.IsZero() {
		return j.nothingToPay()
	}
	if payoutID == "" {
		// Step 4, reconcile: a POST whose outcome is unknown is never
		// repeated before a lookup by reference proves the payout absent.
		// The record is new (or Redis lost it), the attempt that made it
		// ended before its lookup did, or an earlier attempt sent a POST.
		if c.unproved() || c.state == statePosting || !c.firstPostAt.IsZero() {
			found, err := j.lookup()
			if err != nil {
				return err
			}
			if found == "" && j.unbanked && !j.firstPostAt.IsZero() {
				// A payee an earlier POST may have carried is dropped now
				// (its bank left the directory): its REJECTED is final, so
				// the batch's absence is taken only once no POST of it can
				// still land.
				if found, err = j.lookupSettled(); err != nil {
					return err
				}
				j.absentProven = found == ""
			}
			payoutID = found
			j.foundAfterLoss = found != "" && c.unproved()
		}
		t = e.m.stage("reconcile", t)
	}
	if payoutID != "" {
		return j.finish(payoutID)
	}
	if len(j.keep) > 0 && j.refusalMayBeLost(c) {
		// Redis lost our state, and this batch was written before: an
		// attempt of the lost state may have had it refused, its refusal
		// recorded only in what was lost (the whole record, or its last
		// writes when Redis came back from an older snapshot), its
		// REJECTED on the topics.
		r, found, err := j.rejectedOnTopic()
		if err != nil {
			return err
		}
		if found {
			log.Warn("dispatch: the batch was rejected before a Redis data loss (its REJECTED is on the batch status topic): ending it the same way again, never posting it")
			if err := j.recordRefusal(r, stateClaimed, stateDeferred, statePosting); err != nil {
				return err
			}
			j.res, j.reserved = newReservation(b, j.acct, j.keptAmount(), e.now()), true // Release is safe to repeat
			return j.rejectAs(r)
		}
	}
	if len(j.keep) == 0 {
		return j.nothingToPay()
	}
	if dt := b.Schedule.DispersionDatetime; dt != nil {
		if loc := rail.Location(railName(b)); payout.DayIn(*dt, loc) <= payout.DayIn(e.now(), loc) {
			// Its dispersion day came while it waited (deferred by that
			// day's budget, or EXC_008): Wompi refuses it ("at least the
			// next day" [doc]), and a deferral would wait for nothing,
			// day after day while the day's budget lives. Ended here, once
			// no earlier POST of it can still land.
			if !j.firstPostAt.IsZero() || c.unproved() {
				id, err := j.lookupSettled()
				if err != nil {
					return err
				}
				if id != "" {
					return j.finish(id)
				}
			}
			r := newRefusal(string(payout.ReasonInvalidDispersion), "the dispersion day is no longer after today", false)
			if err := j.recordRefusal(r, stateClaimed, stateDeferred, statePosting); err != nil {
				return err
			}
			log.Warn("dispatch: the batch's dispersion day has come: rejected without a POST", "dispersion", dt.UTC())
			j.res, j.reserved = newReservation(b, j.acct, j.keptAmount(), e.now()), true // Release is safe to repeat
			return j.rejectAs(r)
		}
	}

	// Step 5: daily budgets.
	amount := j.keptAmount()
	j.res = newReservation(b, j.acct, amount, e.now())
	g, err := j.reserve()
	if errors.Is(err, errHeldMayLand) {
		// The batch holds another reservation, an earlier attempt's whose
		// POST may still land: it goes back only once none can.
		id, lerr := j.lookupSettled()
		if lerr != nil {
			return lerr
		}
		if id != "" {
			return j.finish(id)
		}
		j.absentProven = true
		g, err = j.reserve()
	}
	j.reserved = err == nil
	if err != nil {
		return err
	}
	e.m.stage("budget", t)
	if !g.Granted {
		reason := payout.ReasonDailyLimit
		if g.Denied == ratelimit.DeniedBatchCount {
			reason = payout.ReasonBatchBudget
		}
		j.overDailyLimit(amount, g)
		return j.deferBatch(reason, j.nextDayStart(), false, "our daily budget is used up ("+string(g.Denied)+")")
	}
	if g.AccountLimitInCents > 0 {
		e.m.budgetUsage.WithLabelValues("amount").Set(float64(g.UsedAmountInCents) / float64(g.AccountLimitInCents))
	}
	if g.BatchCap > 0 {
		e.m.budgetUsage.WithLabelValues("batches").Set(float64(g.UsedBatches) / float64(g.BatchCap))
	}

	// Steps 6 to 9: rate limit and health gate, post exactly once, refusals, success.
	return j.post()
}

// overDailyLimit logs and counts (payouts_dispatcher_over_daily_limit_total)
// a batch denied its day whose amount alone is above the account's daily
// limit: no day will have room for it, and it is deferred every day, never
// split or dropped, until the limit is raised.
func (j *job) overDailyLimit(amount int64, g ratelimit.Grant) {
	if g.AccountLimitInCents <= 0 || amount <= g.AccountLimitInCents {
		return
	}
	j.log.Error("dispatch: the batch's total is above the account's daily limit: it is deferred every day until the limit is raised",
		"amount", amount, "limit", g.AccountLimitInCents)
	j.e.m.overLimit.WithLabelValues(string(railName(j.b))).Inc()
}

// keptAmount is the sum of the kept requests' amounts.
func (j *job) keptAmount() int64 {
	var amount int64
	for _, i := range j.keep {
		amount = addCapped(amount, j.b.Transactions[i].AmountInCents)
	}
	return amount
}

// railName is the rail a batch pays through: its own, else Wompi (batches
// from before rails).
func railName(b *payout.Batch) rail.Name {
	if b.Rail != nil && *b.Rail != "" {
		return rail.Name(*b.Rail)
	}
	return rail.Wompi
}

// budgetDays returns, at now, the batch's amount day (its dispersion day
// when scheduled, else today) and slot day (today: the day the POST goes
// out), in its rail's business days (rail.Location). A Wompi batch's are
// Bogota days, as before rails; a WEpayout batch's are Sao Paulo days.
func budgetDays(b *payout.Batch, now time.Time) (day, slot string) {
	loc := rail.Location(railName(b))
	return b.Schedule.BudgetDayIn(now, loc).String(), payout.DayIn(now, loc).String()
}

// newReservation is the batch's claim on its rail's daily budgets at now:
// the amount counts on the dispersion day (today for an immediate batch),
// the batch slot on the day the POST goes out: today, and followDay moves
// it if the POST slips past midnight.
func newReservation(b *payout.Batch, acct string, amount int64, now time.Time) ratelimit.Reservation {
	day, slot := budgetDays(b, now)
	return ratelimit.Reservation{BatchID: b.BatchID, Rail: railName(b), AccountID: acct, Day: day, SlotDay: slot,
		AmountInCents: amount}
}

// renewEvery is how often a job renews its lease: a third of it.
func renewEvery(lease time.Duration) time.Duration { return max(lease/3, 10*time.Millisecond) }

// leaseFresh reports whether the job may still send a POST: its lease was
// confirmed recently enough that, were Redis lost just after, the POST
// would land within the recovery's wait (recoveryWait, counted from the
// loss): at most a renewal interval plus RecoveryGrace minus one call ago.
// A renewal that fails without an answer (Redis unreachable) does not end
// the soft context, so a replica cut off from a Redis that is lost and
// restarted empty would otherwise go on posting. Every POST checks it just
// before it is sent; past the limit it first tries one renewal itself, so
// that a single late or failed renewal does not stop a healthy job.
func (j *job) leaseFresh() error {
	e := j.e
	limit := j.fenceLimit()
	if age := e.since() - time.Duration(j.leaseSeen.Load()); age > limit {
		began := time.Now()
		ctx, cancel := context.WithTimeout(j.soft, limit)
		err := e.st.renew(ctx, j.owner, j.epoch, j.b.BatchID)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: lease of %s last confirmed %v ago (more than %v), and a renewal failed: no POST until Redis answers: %w",
				errStale, j.b.BatchID, age.Round(time.Millisecond), limit, err)
		}
		// go-redis may answer past the context's deadline (a reply is read
		// up to its ReadTimeout): the renewal counts only if it came back
		// within the limit.
		if took := time.Since(began); took > limit {
			return fmt.Errorf("%w: lease of %s renewed, but the renewal took %v (more than %v)", errStale, j.b.BatchID,
				took.Round(time.Millisecond), limit)
		}
		j.sawLease(began)
	}
	return j.soft.Err()
}

// fenceLimit is how long after the lease's last confirmation a POST may
// still begin (leaseFresh).
func (j *job) fenceLimit() time.Duration {
	return renewEvery(j.e.cfg.LeaseTTL) + j.e.cfg.RecoveryGrace - j.e.cfg.HTTPTimeout
}

// postContext bounds a POST: HTTPTimeout from now, and no later than
// HTTPTimeout past the fence (fenceLimit after the lease's last
// confirmation), by the monotonic clock. leaseFresh checks the fence just
// before the POST; a process frozen between that check and the send (a VM
// paused, a stop-the-world far past any GC pause) would otherwise send it
// once another replica may have taken the batch over, waited out its
// grace and looked the payee up (absent): a rail that does not deduplicate
// would pay it twice. Past that time the POST is not sent: postContext
// answers errStale when the deadline has passed already (net/http may
// still write a request with a done context on an idle connection), and
// the deadline ends a POST still connecting.
func (j *job) postContext() (context.Context, context.CancelFunc, error) {
	e := j.e
	deadline := e.base.Add(time.Duration(j.leaseSeen.Load()) + j.fenceLimit() + e.cfg.HTTPTimeout)
	if d := time.Now().Add(e.cfg.HTTPTimeout); d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(j.hard, deadline)
	if ctx.Err() != nil {
		cancel()
		return nil, nil, fmt.Errorf("%w: the POST of %s was due before its lease fence, and the fence has passed (the process stalled): not sent",
			errStale, j.b.BatchID)
	}
	return ctx, cancel, nil
}

// sawLease records that a Redis call begun at began confirmed the lease;
// an older confirmation never replaces a newer one.
func (j *job) sawLease(began time.Time) {
	at := int64(began.Sub(j.e.base))
	for {
		cur := j.leaseSeen.Load()
		if at <= cur || j.leaseSeen.CompareAndSwap(cur, at) {
			return
		}
	}
}

// keepLease renews the claim every third of the lease; a lost lease ends
// the job's soft context so nothing more is attempted.
func (j *job) keepLease(ctx context.Context, stop context.CancelCauseFunc, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(renewEvery(j.e.cfg.LeaseTTL))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			began := time.Now()
			err := j.e.st.renew(j.hard, j.owner, j.epoch, j.b.BatchID)
			if err == nil {
				j.sawLease(began)
			}
			if err != nil {
				if errors.Is(err, errStale) {
					j.log.Warn("dispatch: lease lost", "err", err)
					stop(err)
					return
				}
				j.log.Warn("dispatch: lease renewal failed", "err", err)
			}
		}
	}
}

func (j *job) resolveBanks() error {
	txs := j.b.Transactions
	codes := make([]string, 0, len(txs))
	pos := make([]int, 0, len(txs))
	j.bankIDs = make([]string, len(txs))
	for i := range txs {
		if id := txs[i].Beneficiary.BankID; id != nil && *id != "" {
			j.bankIDs[i] = *id
			continue
		}
		codes = append(codes, txs[i].Beneficiary.BankCode)
		pos = append(pos, i)
	}
	if len(codes) > 0 {
		var ids []string
		for attempt := 0; ; attempt++ {
			var err error
			if ids, err = j.e.bankIDs(j.soft, codes); err == nil {
				break
			}
			if j.soft.Err() != nil {
				return err
			}
			// No bank table yet and Wompi does not give one: wait, within
			// the batch's patience with its rail.
			j.log.Warn("dispatch: the bank table is not known and GET /banks failed; asking again", "err", err, "try", attempt)
			if werr := j.railWait(j.e.backoff(attempt)); werr != nil {
				return fmt.Errorf("%w: %w", werr, err)
			}
		}
		for k, i := range pos {
			j.bankIDs[i] = ids[k]
		}
	}
	return nil
}

// dedupe fills keep and drops: copies of a requestId inside the batch,
// requestIds another batch owns, and unknown banks (one Redis round trip).
// Every requestId of the batch is indexed, the unknown-bank ones too: a
// REJECTED request is final, so its requestId is consumed, and a later
// attempt of this batch keeps it REJECTED even if the bank became known.
//
// peek only reads back what an earlier attempt of the batch indexed, and
// needs no bank ids: it writes nothing, and reports whole false when some
// requestId's entry is neither this batch's nor another's (keep and drops
// then say what the entries found prove, a requestId without one kept).
// Otherwise whole is true.
func (j *job) dedupe(peek bool) (whole bool, err error) {
	txs := j.b.Transactions
	j.keep, j.drops = j.keep[:0], j.drops[:0]
	seen := make(map[string]bool, len(txs))
	cand := make([]int, 0, len(txs))
	ids := make([]string, 0, len(txs))
	modes := make([]byte, 0, len(txs))
	for i := range txs {
		rid := txs[i].RequestID
		if seen[rid] {
			j.drops = append(j.drops, drop{idx: i, reason: payout.ReasonDuplicateRequest,
				message: "the requestId appears more than once in its batch; this copy is dropped"})
			continue
		}
		seen[rid] = true
		cand = append(cand, i)
		ids = append(ids, rid)
		switch {
		case peek:
			modes = append(modes, modePeek)
		case j.bankIDs[i] == "":
			modes = append(modes, modeReject)
		default:
			modes = append(modes, modeKeep)
		}
	}
	var verdicts, news []byte
	var echoes map[int]string
	complete := false
	if len(ids) > 0 {
		if verdicts, news, complete, echoes, j.indexedBefore, err = j.e.st.dedupeBefore(j.hard, j.entryTTL().Milliseconds(), j.owner, j.epoch, j.b.BatchID, railName(j.b), ids, modes); err != nil {
			return false, err
		}
	}
	// A peek that finds some entry missing (never written, evicted, or a
	// recovery's mark) reports whole false; keep and drops still say what
	// the entries it found prove (a missing one is kept), so that a
	// payee an earlier attempt dropped stays out of a deferred copy.
	partial := peek && bytes.IndexByte(verdicts, verdictMissing) >= 0
	j.unposted, j.complete, j.echoes, j.unbanked = nil, complete, nil, false
	for p, form := range echoes {
		if j.echoes == nil {
			j.echoes = map[int]string{}
		}
		j.echoes[cand[p]] = form
	}
	for p, i := range cand {
		rid := txs[i].RequestID
		switch verdicts[p] {
		case verdictKeep:
			j.keep = append(j.keep, i)
			if news != nil && news[p] == takenOver {
				if j.listed == nil {
					j.listed = map[string]bool{}
				}
				j.listed[rid] = true
			}
			if news != nil && news[p] == newPayee {
				if j.unposted == nil {
					j.unposted = make([]bool, len(txs))
				}
				j.unposted[i] = true
			}
		case verdictRejected, verdictUnbanked:
			j.unbanked = j.unbanked || verdicts[p] == verdictUnbanked
			j.drops = append(j.drops, drop{idx: i, reason: payout.ReasonUnknownBankID,
				message: "GET /banks has no bankId for the beneficiary's bank code",
				eventID: payout.EventID("status", rid, "UNKNOWN_BANK", j.b.BatchID), unbanked: verdicts[p] == verdictUnbanked})
		case verdictOther:
			j.drops = append(j.drops, drop{idx: i, reason: payout.ReasonDuplicateRequest,
				message: "the requestId is already owned by another batch, or paid on another rail; this copy is dropped"})
		case verdictMissing:
			if !partial {
				return false, fmt.Errorf("dispatch: dedupe batch %s: verdict %q", j.b.BatchID, verdicts[p])
			}
			j.keep = append(j.keep, i)
			if news != nil && news[p] == takenOver {
				// Under a recovery's mark (a peek takes nothing over): it
				// may have been paid before the loss, and waits in the
				// copy without a DEFERRED (deferBatch).
				if j.listed == nil {
					j.listed = map[string]bool{}
				}
				j.listed[rid] = true
			}
		default:
			return false, fmt.Errorf("dispatch: dedupe batch %s: verdict %q", j.b.BatchID, verdicts[p])
		}
	}
	if n := len(j.drops); n > 0 {
		j.e.m.duplicates.Add(float64(countReason(j.drops, payout.ReasonDuplicateRequest)))
		j.e.m.unknownBanks.Add(float64(countReason(j.drops, payout.ReasonUnknownBankID)))
		j.log.Info("dispatch: requests dropped from the batch", "dropped", n, "kept", len(j.keep))
	}
	return !partial, nil
}

// rejectsIn reports whether some of ds has a REJECTED (every drop but a
// republished copy, which goes to the DLQ: dropRecords).
func rejectsIn(ds []drop) bool {
	return countReason(ds, payout.ReasonDuplicateRequest) < len(ds)
}

func countReason(ds []drop, r payout.Reason) int {
	n := 0
	for _, d := range ds {
		if d.reason == r {
			n++
		}
	}
	return n
}

// nothingToPay ends a batch whose every request was dropped.
func (j *job) nothingToPay() error {
	recs, err := j.e.dropRecords(j.b, j.src, j.drops, nil)
	if err != nil {
		return err
	}
	// An unknown bank's REJECTED goes through no status gate, and a later
	// attempt that Redis lost it for, reading a bank table that lists the
	// bank, posts the payee: landing after that, it would say REJECTED
	// of a payee paid (holdLease).
	j.ungated = j.ungated || rejectsIn(j.drops)
	if err := j.produce(recs...); err != nil {
		return err
	}
	// posting: a POST of an earlier attempt that the reconcile did not find.
	if _, err := j.e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID, []string{stateClaimed, stateDeferred, statePosting}, stateDone); err != nil {
		return err
	}
	j.log.Info("dispatch: every request of the batch was dropped: nothing posted")
	j.e.m.batches.WithLabelValues("duplicate").Inc()
	return nil
}

// lookup finds the batch in Wompi by its reference: its payout id, or ""
// when Wompi proves it absent. A failed lookup is asked again, with
// backoff: absence is never assumed.
func (j *job) lookup() (string, error) {
	for attempt := 0; ; attempt++ {
		id, err := j.findOnce()
		if err == nil {
			return id, nil
		}
		j.e.m.retries.WithLabelValues("lookup").Inc()
		j.log.Warn("dispatch: lookup by reference failed; retrying", "err", err, "try", attempt)
		if werr := j.railWait(j.e.backoff(attempt)); werr != nil {
			return "", fmt.Errorf("%w: %w", werr, err)
		}
	}
}

// lookupSettled is lookup once no POST of the batch can still land: a
// lookup that finds nothing proves the batch absent only when it begins
// RecoveryGrace or more after the job's latest POST went out (after its
// claim when only an earlier attempt posted) (a POST
// whose answer was lost, or that Go's transport replayed, may be applied
// until then, even after a later attempt was refused). Until then it asks
// again, with backoff, and adopts the payout as soon as it shows.
func (j *job) lookupSettled() (string, error) {
	horizon := j.postHorizon()
	if horizon.IsZero() && !j.firstPostAt.IsZero() {
		// Only an earlier attempt posted: its POST started before this
		// job's claim, and may land until RecoveryGrace after it.
		horizon = j.claimedAt.Add(j.e.cfg.RecoveryGrace)
	}
	if j.earlierPost {
		// An earlier attempt's POST may have started as late as its lease
		// fence (RecoveryGrace - HTTPTimeout past a renewal) and land
		// RecoveryGrace after that: with RecoveryGrace far above
		// HTTPTimeout, or a slower replica's timings, later than
		// RecoveryGrace after this claim. Waited as a single-payout
		// takeover waits (peerWaits).
		_, wait, err := j.e.peerWaits(j.soft)
		if err != nil {
			return "", err
		}
		if h := j.claimedAt.Add(wait); h.After(horizon) {
			horizon = h
		}
	}
	// The wait is no failure of Wompi's: its lookups get RailPatience
	// from the horizon, not from the job's start (which the wait alone
	// may outlast: RecoveryGrace is longer than the default patience).
	if d := horizon.Add(j.e.cfg.RailPatience); d.After(j.railDeadline) {
		j.railDeadline = d
	}
	held := j.keyHeld
	if !held {
		var err error
		if held, err = j.e.st.keyHeld(j.hard, j.b.BatchID); err != nil {
			return "", err
		}
	}
	for attempt := 0; ; attempt++ {
		proof := !time.Now().Before(horizon)
		id, err := j.lookup()
		if err == nil && id == "" && proof && held {
			// An attempt's POST met 409 EXC_022: Wompi holds the key, so
			// the payout exists, listed or not. Nothing here proves it
			// absent: the batch waits, as when Wompi keeps failing.
			j.log.Error("dispatch: Wompi holds the batch's idempotency key (409 EXC_022) but its lookup by reference does not show the payout: not taken as absent")
			return "", fmt.Errorf("%w: %w", errPatience, errKeyHeld)
		}
		if err != nil || id != "" || proof {
			return id, err
		}
		if attempt == 0 {
			j.log.Warn("dispatch: the batch is not in Wompi, but a POST of it may still land: asking again until none can",
				"wait", time.Until(horizon).Round(time.Millisecond))
		}
		j.e.m.retries.WithLabelValues("lookup").Inc()
		if err := sleep(j.soft, min(j.e.backoff(attempt), time.Until(horizon))); err != nil {
			return "", err
		}
	}
}

// postHorizon is when no POST this job sent can land any more: its latest
// POST's start plus RecoveryGrace (zero when it sent none).
func (j *job) postHorizon() time.Time {
	if j.lastPost.IsZero() {
		return time.Time{}
	}
	return j.lastPost.Add(j.e.cfg.RecoveryGrace)
}

// awaitVisible follows a 409 EXC_022 (Wompi holds the key): it asks for the
// payout by reference, with backoff, for at most LookupPatience. It returns
// "" when the payout never showed up; the caller moves the batch aside
// rather than stall its partition.
func (j *job) awaitVisible() (string, error) {
	deadline := time.Now().Add(j.e.cfg.LookupPatience)
	for attempt := 0; ; attempt++ {
		id, err := j.findOnce()
		if err == nil && id != "" {
			return id, nil
		}
		if err == nil {
			err = errors.New("not visible yet")
		}
		if time.Now().After(deadline) {
			j.log.Error("dispatch: Wompi says the batch exists (EXC_022) but GET /payouts?reference= does not show it; moving the batch aside",
				"err", err, "patience", j.e.cfg.LookupPatience)
			return "", nil
		}
		j.e.m.retries.WithLabelValues("lookup").Inc()
		j.log.Warn("dispatch: payout not visible by reference yet; retrying", "err", err, "try", attempt)
		if err := sleep(j.soft, j.e.backoff(attempt)); err != nil {
			return "", err
		}
	}
}

// findOnce asks Wompi once for the payout with the batch's reference.
func (j *job) findOnce() (string, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(j.hard, j.e.cfg.HTTPTimeout)
	bs, err := j.e.batchRail.FindBatches(ctx, j.b.BatchID)
	cancel()
	j.e.m.observe("find_payout", start, err)
	if err != nil {
		return "", err
	}
	for i := range bs {
		if bs[i].ProviderID == "" {
			// Ours, listed without Wompi's id: neither adoptable nor
			// absent (read as absent, a POST under a key Wompi has
			// forgotten would pay the batch again). A failed lookup.
			return "", errListedWithoutID
		}
	}
	if len(bs) > 1 {
		// Paid twice already (another system, or a key that expired while
		// a listing lagged): one is adopted and nothing is posted again,
		// but someone must know (as a single-payout rail's lookup tells).
		j.e.m.providerDupes.WithLabelValues(string(rail.Wompi)).Inc()
		j.log.Error("dispatch: Wompi lists more than one payout under the batch's reference: its payees may be paid more than once; adopting the oldest, posting nothing",
			"payouts", len(bs))
	}
	id := pickPayout(bs)
	j.e.m.reconciled.WithLabelValues(strconv.FormatBool(id != "")).Inc()
	if id != "" {
		j.log.Info("dispatch: batch found in Wompi by reference: not posting again", "payout_id", id)
	}
	return id, nil
}

// pickPayout chooses among payouts with our reference: the oldest that may
// still pay (not refused: NOT_APPROVED, REJECTED, AFE_REJECTED), else the
// oldest. One is the one our idempotency key created; more than one is a
// double posting that this dispatcher never makes (reported by findOnce).
// Adopting a refused one beside one that pays would end the batch's
// requests REJECTED while they are paid, and the marketplace would send
// them again (as a single-payout rail's lookup, which prefers the same).
func pickPayout(bs []rail.Batch) string {
	refused := func(b rail.Batch) bool {
		switch b.Status {
		case payout.BatchNotApproved, payout.BatchRejected, payout.BatchAFERejected:
			return true
		}
		return false
	}
	best := -1
	for i := range bs {
		switch {
		case best < 0:
			best = i
		case refused(bs[i]) != refused(bs[best]):
			if !refused(bs[i]) {
				best = i
			}
		case bs[i].CreatedAt.Before(bs[best].CreatedAt):
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return bs[best].ProviderID
}

// entryTTL is how long the batch's entries in the duplicate index live:
// the dedupe window, from the dispersion of a scheduled batch (Wompi pays
// it then, and a copy republished within a window of that must still meet
// its entry) or from now (livingTTL).
func (j *job) entryTTL() time.Duration {
	return livingTTL(j.e.cfg.DedupeWindow, j.b.Schedule.DispersionDatetime, j.e.now())
}

// livingTTL is window, from dispersion when it is after now, else from
// now; saturated for a dispersion centuries ahead.
func livingTTL(window time.Duration, dispersion *time.Time, now time.Time) time.Duration {
	ttl := window
	if dispersion != nil {
		if ahead := dispersion.Sub(now); ahead > math.MaxInt64-ttl {
			return math.MaxInt64 // centuries ahead: saturated, not wrapped
		} else if ahead > 0 {
			ttl += ahead
		}
	}
	return ttl
}

// errKeyHeld: Wompi answered a POST of the batch 409 EXC_022 (it holds
// the idempotency key: the payout exists), yet its lookup by reference does
// not show the payout. lookupSettled answers it, wrapped in errPatience,
// instead of the batch's absence: the batch waits on the deferred topic
// (wompiUnavailable: PAYOUT_NOT_VISIBLE) and is looked up again, never
// ended REJECTED nor posted under a new key life on such a lookup.
var errKeyHeld = errors.New("dispatch: Wompi holds the batch's idempotency key (409 EXC_022) but does not list its payout by reference")

// errHeldMayLand: the batch holds a different reservation, and a POST of
// an earlier attempt may still land (reserveSeeding).
var errHeldMayLand = errors.New("dispatch: the batch holds another reservation, and an earlier POST of it may still land")

// reserve takes the batch's reservation, seeding its days from Wompi when
// Redis does not know them.
func (j *job) reserve() (ratelimit.Grant, error) { return j.reserveSeeding(false, j.seed) }

// reserveSeeding takes the batch's reservation, calling seed for what Redis
// does not know yet. keepHeld: a different reservation the batch holds on
// the amount day is kept and taken as covering this one (AlreadyHeld),
// rather than released and replaced.
func (j *job) reserveSeeding(keepHeld bool, seed func(*ratelimit.NotSeededError) error) (ratelimit.Grant, error) {
	e := j.e
	for attempt := 0; ; attempt++ {
		g, err := e.budget.Reserve(j.hard, j.res)
		var ns *ratelimit.NotSeededError
		switch {
		case err == nil:
			return g, nil
		case attempt >= 3:
			return g, err
		case errors.As(err, &ns):
			if err := seed(ns); err != nil {
				return g, err
			}
		case errors.Is(err, ratelimit.ErrServerChanged):
			return g, j.budgetsLost(err)
		case keepHeld && errors.Is(err, ratelimit.ErrReservationConflict):
			j.log.Info("dispatch: the batch's earlier reservation on the day covers its rest", "err", err)
			return ratelimit.Grant{Granted: true, AlreadyHeld: true}, nil
		case errors.Is(err, ratelimit.ErrReservationConflict) && !j.firstPostAt.IsZero() && !j.absentProven:
			// An earlier attempt's POST may still land (a replica cut off
			// with its POST in flight, whose lease ran out), and the
			// reconcile's lookup proved nothing while it may: released
			// now, and the new reservation denied (the batch's slot moved
			// to a full day), the batch Wompi then holds would count
			// nowhere. The caller looks it up once none can land.
			return g, fmt.Errorf("%w: %w", errHeldMayLand, err)
		case errors.Is(err, ratelimit.ErrReservationConflict):
			// The batch's kept transactions, or its slot day, changed since
			// its earlier reservation. It is not in Wompi (we are before
			// the POST, and any earlier POST was looked up and not found,
			// once none could land):
			// the old reservation goes back, whatever its days. Unless
			// this replica lost its lease: the reservation may then be
			// that of another replica, which took the batch over and
			// posted it. The renewal proves the lease first, and keeps
			// it for the Release and the Reserve after it.
			if err := e.st.renew(j.hard, j.owner, j.epoch, j.b.BatchID); err != nil {
				return g, fmt.Errorf("dispatch: the batch holds another reservation, and its lease could not be renewed: %w", err)
			}
			j.log.Warn("dispatch: replacing the batch's earlier reservation", "err", err)
			if _, err := e.budget.Release(j.hard, j.res); err != nil {
				return g, err
			}
		default:
			return g, err
		}
	}
}

// budgetsLost answers ratelimit.ErrServerChanged: the budgets' Redis
// process changed while the epoch's did not (a Redis Cluster whose
// {budget} master alone restarted or failed over), so they may have lost
// their last reservations while still reading as seeded. The epoch is
// ended and the batch starts again from its claim, after the recovery
// has booked again what the rails list for the day.
func (j *job) budgetsLost(cause error) error {
	j.log.Error("dispatch: the daily budgets' Redis process changed while the epoch's did not: recovering before any reservation", "err", cause)
	if err := j.e.st.budgetsLost(j.hard, j.epoch); err != nil {
		return err
	}
	return fmt.Errorf("%w: %w", errStale, cause)
}

// seed writes into the Redis budget what Wompi says is already consumed,
// for the parts ns names: the account's amount on the amount day, the
// client's batch count on the slot day. Seeding keeps the larger of each
// figure and what Redis already holds (our own reservations).
//
// The figures come from the rail (rail.DayUsage): on Wompi, only GET
// /limits' published fields are relied on [sdk]: the client-wide
// dailyConsumed of TODAY. The simulator's extras (accounts[], ?date=,
// numberOfBatchesConsumed) are [ours] and used only when present. Without
// them the figures are ESTIMATES:
//   - the account's amount is the client-wide dailyConsumed (an upper bound:
//     other accounts' spending counts too); for another day than today,
//     nothing is published and it is 0 (plus our own reservations);
//   - the batch count is the number of batches GET /payouts lists with
//     fromDate = toDate = the slot day [doc filters], which Wompi may date
//     by creation (the day a batch is sent, as the cap counts) or by
//     dispersion (unpublished); our own reservations count too.
func (j *job) seed(ns *ratelimit.NotSeededError) error {
	e := j.e
	if ns.Rail != rail.Wompi {
		// Wompi's figures say nothing of another rail's budgets.
		return fmt.Errorf("dispatch: the budgets of rail %s cannot be seeded from Wompi's figures", ns.Rail)
	}
	// Each call of Wompi is asked again, with backoff, while Wompi fails
	// (an outage, or an answer that cannot be read: a negative figure),
	// within the batch's patience (railWait): past it, the batch waits on
	// the deferred topic (run: errPatience) instead of being retried in
	// place for as long as Wompi fails, its partition held.
	call := func(endpoint string, f func(ctx context.Context) error) error {
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(j.soft, e.cfg.HTTPTimeout)
			start := time.Now()
			err := f(ctx)
			cancel()
			e.m.observe(endpoint, start, err)
			if _, ok := railError(err); !ok {
				return err
			}
			e.m.retries.WithLabelValues(endpoint).Inc()
			j.log.Warn("dispatch: a call of Wompi for the daily budget failed; retrying", "endpoint", endpoint, "err", err, "try", attempt)
			if werr := j.railWait(e.backoff(attempt)); werr != nil {
				return fmt.Errorf("%w: %w", werr, err)
			}
		}
	}
	asked := map[string]rail.Usage{}
	limitsOn := func(day string) (rail.Usage, string, error) {
		lim, ok := asked[day]
		if !ok {
			err := call("limits", func(ctx context.Context) (err error) {
				lim, err = e.batchRail.UsageOn(ctx, day)
				return err
			})
			if err != nil {
				return rail.Usage{}, "", fmt.Errorf("dispatch: GET /limits: %w", err)
			}
			asked[day] = lim
		}
		answered := lim.Day // [ours]; the published /limits answers today
		if answered == "" {
			answered = payout.DayIn(e.now(), rail.Location(rail.Wompi)).String()
		}
		return lim, answered, nil
	}
	if day := ns.AmountDay; day != "" {
		lim, answered, err := limitsOn(day)
		if err != nil {
			return err
		}
		var consumed int64
		if answered == day {
			consumed = lim.ConsumedInCents // the client's: an upper bound of the account's
		}
		estimate := true
		for _, a := range lim.Accounts { // [ours]
			if a.AccountID == j.acct && answered == day {
				consumed, estimate = a.ConsumedInCents, false
				if a.DailyLimitInCents > 0 {
					e.limitsMu.Lock()
					e.acctLimits[j.acct] = a.DailyLimitInCents
					e.limitsMu.Unlock()
				}
			}
		}
		u, err := e.budget.SeedAmount(j.hard, ns.Rail, day, j.acct, consumed)
		if err != nil {
			return err
		}
		j.log.Info("dispatch: daily amount seeded from Wompi", "day", day, "consumed", u.AmountInCents, "estimate", estimate)
	}
	if day := ns.SlotDay; day != "" {
		lim, answered, err := limitsOn(day)
		if err != nil {
			return err
		}
		batches := 0
		if lim.Day != "" && answered == day {
			batches = lim.Batches // [ours]: the batches sent that day
		}
		if batches == 0 {
			var n int
			err := call("payouts", func(ctx context.Context) (err error) {
				n, err = e.batchRail.BatchesListedOn(ctx, day)
				return err
			})
			if err != nil {
				return fmt.Errorf("dispatch: GET /payouts of the day: %w", err)
			}
			batches = n
		}
		u, err := e.budget.SeedBatches(j.hard, ns.Rail, day, batches)
		if err != nil {
			return err
		}
		j.log.Info("dispatch: daily batch count seeded from Wompi", "day", day, "batches", u.Batches)
	}
	return nil
}

// followDay keeps the batch slot on the day the POST goes out. Retries,
// health waits and the rate limit can carry a POST past the midnight after
// its reservation; Wompi then counts the batch on the new day (its slot,
// and for an immediate batch its amount too), so the reservation moves
// there, atomically. The old day is past: no later reservation counts on
// it, so moving is safe even if an earlier POST landed there (the new day
// is then counted one too many, never too few).
//
// When the new day has no room, the batch is deferred to the next day
// (deferred is true): one never posted gives its reservation back; one
// whose earlier POST may have landed keeps it, as for Wompi's own refusal
// for now (wompiDeferred), and its copy looks it up first. Posted again
// into the full day, it would be paid past the limit whenever that earlier
// POST had not landed (a 5xx, a timeout before Wompi took it).
func (j *job) followDay(maybeSent bool) (deferred bool, err error) {
	e := j.e
	day, slot := budgetDays(j.b, e.now())
	var g ratelimit.Grant
	for attempt := 0; ; attempt++ {
		g, err = e.budget.Move(j.hard, j.res, day, slot)
		var ns *ratelimit.NotSeededError
		if errors.Is(err, ratelimit.ErrServerChanged) {
			return false, j.budgetsLost(err)
		}
		if err != nil && attempt < 3 && errors.As(err, &ns) {
			if err := j.seed(ns); err != nil {
				return false, err
			}
			continue
		}
		if err != nil {
			return false, err
		}
		break
	}
	if g.Granted {
		j.log.Info("dispatch: the POST goes out on a later day than reserved: reservation moved",
			"from_slot_day", j.res.SlotDay, "slot_day", slot, "amount_day", day)
		j.res.Day, j.res.SlotDay = day, slot
		return false, nil
	}
	if maybeSent {
		j.log.Warn("dispatch: the POST would go out on a later day whose budget is used up, and an earlier POST may have landed: deferred with the earlier reservation",
			"slot_day", j.res.SlotDay, "today", slot, "denied", g.Denied)
	}
	reason := payout.ReasonDailyLimit
	if g.Denied == ratelimit.DeniedBatchCount {
		reason = payout.ReasonBatchBudget
	}
	return true, j.deferBatch(reason, j.nextDayStart(), !maybeSent, "our daily budget is used up ("+string(g.Denied)+")")
}

// stillHeld checks, before a POST on the day of the batch's reservation,
// that the reservation is still there, where the day's budget may have
// been lost while the epoch was not (on a Redis Cluster the budgets'
// master alone, restarted empty: no stamp is left to tell; an evicting
// Redis), as followSingleDay does for a single-payout rail. Lost, the next
// batch of the account seeds the day from GET /limits, which does not
// count this batch until its POST lands, and both would be paid past the
// limit. The batch is reserved again; when the day has no room, it waits
// for the next day (deferred is true), as followDay has it: one whose
// earlier POST may have landed is looked up first then.
func (j *job) stillHeld() (deferred bool, err error) {
	held, err := j.e.budget.Holds(j.hard, j.res)
	if err != nil || held {
		return false, err
	}
	j.log.Warn("dispatch: the batch's reservation is gone from the day's budget (lost with Redis): reserving it again before the POST",
		"amount_day", j.res.Day, "slot_day", j.res.SlotDay)
	g, err := j.reserve()
	if err != nil {
		return false, err
	}
	if g.Granted {
		return false, nil
	}
	reason := payout.ReasonDailyLimit
	if g.Denied == ratelimit.DeniedBatchCount {
		reason = payout.ReasonBatchBudget
	}
	return true, j.deferBatch(reason, j.nextDayStart(), false, "our daily budget is used up ("+string(g.Denied)+")")
}

// idempotencyKey derives the key from the batch id: the id itself when it
// is a valid key (ingest's "b-" + 40 hex always is), else a digest of it.
func idempotencyKey(batchID string) string {
	if rail.ValidIdempotencyKey(batchID) {
		return batchID
	}
	sum := sha256.Sum256([]byte(batchID))
	return "k-" + hex.EncodeToString(sum[:20])
}

// request is the batch as sent: its kept transactions, each with the bankId
// screening resolved (the rail resolves nothing more).
func (j *job) request() rail.BatchRequest {
	b := j.b
	r := rail.BatchRequest{Reference: b.BatchID, OriginAccountID: b.OriginAccountID, PaymentType: string(b.PaymentType)}
	if dt := b.Schedule.DispersionDatetime; dt != nil {
		r.DispersionAt = *dt
	}
	if rc := b.Schedule.Recurring; rc != nil {
		r.Recurring = &rail.Recurring{Interval: string(rc.Interval), Months: int(rc.Months)}
		if rc.Description != nil {
			r.Recurring.Description = *rc.Description
		}
	}
	r.Items = make([]rail.BatchItem, len(j.keep))
	for k, i := range j.keep {
		t := &b.Transactions[i]
		r.Items[k] = rail.BatchItem{ID: t.RequestID, AmountInCents: t.AmountInCents,
			Payee: rail.PayeeOf(&t.Beneficiary), ProviderBankID: j.bankIDs[i]}
	}
	return r
}

// post sends POST /payouts until Wompi gives an answer that settles the
// batch, always with the same idempotency key. Its rules:
//   - a POST never goes out with a key that may have expired: past
//     KeyMaxAge since the first POST, the batch is looked up by reference
//     first; found, it is adopted; proven absent, the key starts a new life;
//   - once any POST may have reached Wompi, no later refusal (a validation
//     4xx, a limit) is taken at its word: a lookup by reference decides;
//   - 401, 403 and 404 say nothing about the batch and no retry fixes them:
//     counted, logged as errors, retried at the longest backoff;
//   - a 409 EXC_022 whose payout never shows up moves the batch aside.
func (j *job) post() error {
	e := j.e
	req := j.request()
	key := idempotencyKey(j.b.BatchID)
	var payoutID string
	for attempt := 0; ; attempt++ {
		waitStart := time.Now()
		if err := e.health.wait(j.soft, j.log, j.railDeadline); err != nil {
			return err
		}
		if err := e.limiter.Wait(j.soft, rail.Wompi); err != nil { // the POST goes to Wompi
			return err
		}
		e.m.stage("wait", waitStart)
		// Every attempt first proves, atomically, that the epoch is still
		// current and the lease still ours: after a Redis loss no attempt
		// starts without the recovery seeing it (the grace period).
		began := time.Now()
		fields := []string{"?firstPostAt", strconv.FormatInt(e.now().UnixMilli(), 10)}
		if j.stale {
			// Looked up first (unproved): from here the record's
			// posting state and firstPostAt call for the lookups.
			fields = append(fields, "stale", "0")
		}
		first, err := e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID,
			[]string{stateClaimed, stateDeferred, statePosting}, statePosting, fields...)
		if err != nil {
			return err
		}
		j.sawLease(began)
		if j.soft.Err() != nil {
			return j.soft.Err()
		}
		if !j.firstPostAt.IsZero() && e.now().Sub(first) > e.cfg.KeyMaxAge {
			// The key may be gone at Wompi (24 h): reconcile, then adopt
			// or restart the key's life.
			j.log.Warn("dispatch: the idempotency key is near its 24 h lifetime: looking the batch up before posting again",
				"first_post_at", first.UTC(), "key_max_age", e.cfg.KeyMaxAge)
			id, err := j.lookupSettled()
			if err != nil {
				return err
			}
			if id != "" {
				payoutID = id
				break
			}
			if _, err := e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID, []string{statePosting}, statePosting,
				"firstPostAt", strconv.FormatInt(e.now().UnixMilli(), 10)); err != nil {
				return err
			}
		}
		maybeSent := !j.firstPostAt.IsZero() // an earlier POST of this batch may have landed
		if j.firstPostAt.IsZero() {
			j.firstPostAt = first
		}
		if e.beforePost != nil {
			e.beforePost(j.b.BatchID)
		}
		if _, slot := budgetDays(j.b, e.now()); slot != j.res.SlotDay {
			if deferred, err := j.followDay(maybeSent); err != nil || deferred {
				return err
			}
		} else if e.budgetApart || e.mayEvict.Load() {
			if deferred, err := j.stillHeld(); err != nil || deferred {
				return err
			}
		}
		if err := j.leaseFresh(); err != nil {
			return err
		}
		if e.whileSending != nil {
			e.whileSending(j.b.BatchID)
		}
		start := time.Now()
		j.lastPost = start
		ctx, cancel, err := j.postContext()
		if err != nil {
			return err
		}
		res, err := e.batchRail.CreateBatch(ctx, key, req)
		cancel()
		e.m.observe("create_payout", start, err)
		e.m.stage("post", start)
		if err == nil && res.ProviderID != "" {
			payoutID, j.created = res.ProviderID, true
			break
		}
		if err == nil {
			// The rail answers OutcomeUnknown itself; this keeps the
			// batch safe should one not.
			err = &rail.Error{Rail: rail.Wompi, Op: "create", HTTPStatus: http.StatusCreated,
				Message: "answer without payoutId", Class: rail.OutcomeUnknown}
		}
		lookupFirst, verdict := judgePost(err)
		// A refusal that ends the batch is looked up by lookupSettled
		// (postRejected below, poison for postFailed), whose first GET is
		// made at once: this one would only repeat it.
		if lookupFirst && verdict != postRejected && verdict != postFailed {
			// No refusal is taken at its word: the batch may already be in
			// Wompi. An earlier attempt may have landed (created at
			// 23:59:50, refused at 00:00:50 because its dispersion date went
			// stale), and even this attempt's answer may be to a replay:
			// Go's HTTP transport itself resends a POST that carries an
			// Idempotency-Key when a reused connection breaks. A GET now
			// adopts a batch already listed; one that finds nothing proves
			// nothing while a POST may still land, so a refusal that ends
			// the batch is taken only after lookupSettled, and a refusal
			// for now keeps the reservation (wompiDeferred).
			j.log.Warn("dispatch: POST refused: looking the batch up by reference before taking the refusal", "err", err)
			id, lerr := j.lookup()
			if lerr != nil {
				return lerr
			}
			if id != "" {
				payoutID = id
				break
			}
		}
		switch verdict {
		case postExists:
			j.log.Info("dispatch: Wompi already has this batch (EXC_022): looking it up by reference")
			// Wompi holds the key: a POST of the batch landed that the
			// lookups did not show, perhaps an earlier attempt's, which
			// carried the payees dropped since for their bank (an
			// unbanked drop then waits in a deferred copy).
			j.absentProven = false
			// Recorded for every later attempt: no lookup that does not
			// show the payout proves the batch absent (lookupSettled).
			j.keyHeld = true
			if _, err := e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID, []string{statePosting}, statePosting,
				keyHeldField, "1"); err != nil {
				return err
			}
			id, lerr := j.awaitVisible()
			if lerr != nil {
				return lerr
			}
			if id == "" {
				return j.deferBatch(payout.ReasonPayoutNotVisible, e.now().Add(e.cfg.LookupPatience), false,
					"Wompi holds the idempotency key but does not list the payout by reference")
			}
			payoutID = id
		case postDeferred:
			return j.wompiDeferred(err)
		case postRejected:
			id, lerr := j.lookupSettled()
			if lerr != nil {
				return lerr
			}
			if id == "" {
				return j.reject(err)
			}
			payoutID = id
		case postFailed: // poison looks the batch up once no POST can land
			return &PermanentError{Reason: payout.ReasonDispatchFailed, Err: err}
		default: // postRetry
			e.m.retries.WithLabelValues("post").Inc()
			wait := e.backoff(attempt)
			if code, blocked := blockedCode(err); blocked {
				// No retry fixes this: make it loud, and wait the longest.
				e.m.postBlocked.WithLabelValues(code).Inc()
				wait = e.cfg.RetryMax
				j.log.Error("dispatch: POST /payouts refused for a reason no retry fixes (API key, permission or base URL); retrying at the longest backoff until it is fixed",
					"err", err, "try", attempt)
			} else {
				j.log.Warn("dispatch: POST /payouts failed; retrying with the same idempotency key",
					"err", err, "outcome_unknown", classOf(err) == rail.OutcomeUnknown, "try", attempt)
			}
			if e.hard.Err() != nil {
				return e.hard.Err()
			}
			if werr := j.railWait(wait); werr != nil {
				return fmt.Errorf("%w: %w", werr, err)
			}
			continue
		}
		break
	}
	if e.afterPost != nil {
		if err := e.afterPost(j.b.BatchID); err != nil {
			e.crash() // abrupt: no lease release, no commit
			return fmt.Errorf("%w: %w", errCrashed, err)
		}
	}
	return j.finish(payoutID)
}

// railError returns the *rail.Error in err's chain.
func railError(err error) (*rail.Error, bool) {
	var re *rail.Error
	ok := errors.As(err, &re)
	return re, ok
}

// postVerdict is what a failed POST leads to.
type postVerdict int

const (
	// postRetry: the same key again, with backoff (OutcomeUnknown,
	// Retryable, Unauthorized at the longest backoff, and the few answers
	// kept out of the other verdicts).
	postRetry postVerdict = iota
	// postExists: the rail holds the key (AlreadyExists): wait for the
	// batch to be listed by reference.
	postExists
	// postDeferred: refused for now: the batch waits (wompiDeferred).
	postDeferred
	// postRejected: refused as sent (Rejected): REJECTED.
	postRejected
	// postFailed: refused for good (postPermanent): the batch ends.
	postFailed
)

// judgePost maps a POST's error to its verdict, and says whether a lookup
// by reference must come first (refused: no refusal is taken at its word).
// The order matters: AlreadyExists, then a refusal for now, then the
// rail's Rejected, then postPermanent.
func judgePost(err error) (lookupFirst bool, v postVerdict) {
	lookupFirst = refused(err)
	switch {
	case classOf(err) == rail.AlreadyExists:
		v = postExists
	case deferrable(err):
		v = postDeferred
	case classOf(err) == rail.Rejected:
		v = postRejected
	case postPermanent(err):
		v = postFailed
	default:
		v = postRetry
	}
	return lookupFirst, v
}

// classOf is the class of the rail's error in err's chain; "" for an
// error that is not the rail's.
func classOf(err error) rail.Class {
	if re, ok := railError(err); ok {
		return re.Class
	}
	return ""
}

// blockedCode reports the rail's Unauthorized (on Wompi a 401, 403 or 404
// answer): nothing about the batch, and nothing a retry can fix. The code
// is the HTTP status (the metric's label).
func blockedCode(err error) (string, bool) {
	re, ok := railError(err)
	if !ok || re.Class != rail.Unauthorized {
		return "", false
	}
	return strconv.Itoa(re.HTTPStatus), true
}

// deferrable reports a refusal of the batch for now: the rail's Deferred,
// or an answer that names such a refusal (Reason) although its outcome is
// unknown (a 5xx naming a limit: refused like any other, after the lookup
// by reference that every refusal gets).
func deferrable(err error) bool {
	re, ok := railError(err)
	return ok && (re.Class == rail.Deferred || re.Reason != "")
}

// refused reports an answer to the POST that no refusal is taken at its
// word on before a lookup by reference: a refusal for now (deferrable),
// and any 4xx whose outcome is known except 401, 403 and 404 (our
// credentials or URL), 408, 409, 425 and 429 (retried). That is the rail's
// Rejected (400, 422) and Permanent (another 4xx), and its AlreadyExists or
// Deferred when the code came with one of those statuses.
func refused(err error) bool {
	if deferrable(err) {
		return true
	}
	re, ok := railError(err)
	if !ok || re.Class == rail.OutcomeUnknown || re.HTTPStatus < 400 || re.HTTPStatus >= 500 {
		return false
	}
	switch re.HTTPStatus {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return true
}

// wompiDeferred handles a refusal for now (Wompi's EXC_017, EXC_008 and
// DAILY_BATCH_LIMIT): the batch was not created; the reservation goes back
// and the batch waits, for the reason the rail gives.
//
// The reservation is kept: the refused POST, or an earlier one whose
// answer was lost, may still land (postHorizon), and the lookup before
// this one proved nothing. The copy waits at least until none can land
// (deferBatch), looks the batch up first, and then either adopts the
// payout or replaces the reservation (reserveSeeding).
func (j *job) wompiDeferred(err error) error {
	re, _ := railError(err)
	const release = false
	switch re.Reason {
	case payout.ReasonInsufficientBalance:
		return j.deferBatch(payout.ReasonInsufficientBalance, j.e.now().Add(j.e.cfg.DeferBalanceRetry), release, re.Message)
	case payout.ReasonBatchBudget:
		return j.deferBatch(payout.ReasonBatchBudget, j.nextDayStart(), release, re.Message)
	default:
		return j.deferBatch(payout.ReasonDailyLimit, j.nextDayStart(), release, re.Message)
	}
}

// nextDayStart is the start of the next business day of the batch's rail,
// when its daily budgets start afresh.
func (j *job) nextDayStart() time.Time {
	loc := rail.Location(railName(j.b))
	return payout.DayIn(j.e.now(), loc).Next().StartIn(loc)
}

// deferBatch re-produces the batch (its kept transactions, Attempt+1,
// NotBefore) to the deferred topic and DEFERRED per request, durably,
// before the caller commits the source offset.
//
// When the rail may hold the batch (a POST of it may have landed, or a
// lookup could not tell), the tracker may already have emitted a status of
// the rail's for its requests: their DEFERRED then goes through the status
// gate and is not emitted after a later status.
func (j *job) deferBatch(reason payout.Reason, notBefore time.Time, release bool, why string) error {
	e, b := j.e, j.b
	if left := time.Until(j.postHorizon()); left > 0 {
		// A POST of this job may still land: the copy's lookup must not
		// run before it can no longer.
		if at := e.now().Add(left); at.After(notBefore) {
			notBefore = at
		}
	}
	var mark []string
	if j.unsettled {
		// The next attempt must look the batch up before any POST, as
		// this one could not: the mark of a POST that may have gone out.
		mark = []string{"?firstPostAt", strconv.FormatInt(e.now().UnixMilli(), 10)}
	}
	// The move first: it fails when the lease is no longer ours (a replica
	// cut off from Redis past its lease, whose batch another may have
	// taken over and posted since), and then nothing is given back.
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID,
		[]string{stateClaimed, stateDeferred, statePosting}, stateDeferred, mark...); err != nil {
		return err
	}
	if release {
		if _, err := e.budget.Release(j.hard, j.res); err != nil {
			return err
		}
	}
	// A payee dropped for its bank whose earlier POST may have carried it
	// (verdictUnbanked) waits in the copy while no lookup proved the batch
	// absent: its REJECTED is final, and Wompi may hold (and pay) it.
	wait, dropNow := j.keep, j.drops
	if j.unbanked && !j.absentProven && (j.unsettled || !j.firstPostAt.IsZero()) {
		wait, dropNow = append([]int(nil), j.keep...), nil
		for _, d := range j.drops {
			if d.unbanked {
				wait = append(wait, d.idx)
			} else {
				dropNow = append(dropNow, d)
			}
		}
	}
	copyRec, statuses, next, err := j.deferredCopy(wait, reason, why, notBefore)
	if err != nil {
		return err
	}
	if j.copyOnly {
		statuses = nil
	}
	if len(j.listed) > 0 && len(statuses) > 0 {
		// A payee whose entry was taken over from a recovery's mark may
		// have been paid, and its statuses emitted up to a final one,
		// before the loss: it waits in the copy without a DEFERRED.
		ws, ss := make([]int, 0, len(wait)), make([]*kgo.Record, 0, len(statuses))
		for k, i := range wait {
			if !j.listed[b.Transactions[i].RequestID] {
				ws, ss = append(ws, i), append(ss, statuses[k])
			}
		}
		wait, statuses = ws, ss
	}
	drops, err := e.dropRecords(b, j.src, dropNow, nil)
	if err != nil {
		return err
	}
	if j.unsettled || !j.firstPostAt.IsZero() {
		// One gate item per DEFERRED produced (statuses[k] is wait[k]'s):
		// none when only the copy is written (copyOnly).
		gate := make([]track.GateItem, len(statuses))
		for k := range statuses {
			gate[k] = track.GateItem{ID: b.Transactions[wait[k]].RequestID, To: string(payout.StatusDeferred)}
		}
		// The drops' REJECTED beside them go through no gate: a later
		// attempt's status of those payees (a DEFERRED, then its copy's
		// SUBMITTED) does not wait for them (nothingToPay).
		j.ungated = j.ungated || rejectsIn(dropNow)
		err = j.produceGated(statuses, gate, drops)
	} else {
		j.ungated = true
		err = j.produce(append(statuses, drops...)...)
	}
	if err != nil {
		return err
	}
	// The copy last, alone, once every other record of the attempt is
	// known written (the drops and refusals it leaves out, the statuses of
	// payees settled beside it). In one produce with them, the copy could
	// land while one of them failed: its own attempt might end the batch
	// done before the original is read again, and the original, finding
	// the batch final, was committed: a request the copy left out had no
	// REJECTED, DLQ record or copy anywhere.
	if err := j.produce(copyRec); err != nil {
		return err
	}
	e.m.deferred.WithLabelValues(string(reason)).Inc()
	e.m.batches.WithLabelValues("deferred").Inc()
	j.log.Info("dispatch: batch deferred", "reason", reason, "not_before", notBefore.UTC(), "next_attempt", next)
	return nil
}

// deferredCopy builds the copy of the batch that holds the transactions at
// positions wait (Attempt+1, NotBefore) for the deferred topic, and the
// DEFERRED event of each of them (same order as wait); next is the copy's
// attempt.
func (j *job) deferredCopy(wait []int, reason payout.Reason, msg string, notBefore time.Time) (copyRec *kgo.Record, statuses []*kgo.Record, next int32, err error) {
	e, b := j.e, j.b
	nb := *b
	nb.Attempt = b.Attempt + 1
	nb.NotBefore = &notBefore
	nb.Transactions = make([]payout.Transaction, len(wait))
	nb.TotalAmountInCents = 0
	for k, i := range wait {
		nb.Transactions[k] = b.Transactions[i]
		nb.TotalAmountInCents += b.Transactions[i].AmountInCents
	}
	nb.TransactionCount = int32(len(wait))
	v, err := e.cfg.Codec.AppendBatch(nil, &nb)
	if err != nil {
		return nil, nil, 0, &PermanentError{Reason: payout.ReasonDispatchFailed, Err: fmt.Errorf("dispatch: encode deferred batch: %w", err)}
	}
	attempt := strconv.Itoa(int(nb.Attempt))
	for _, i := range wait {
		t := &b.Transactions[i]
		r, err := e.statusRecord(b, t, payout.StatusDeferred, string(reason), msg, nil, nil,
			payout.EventID("status", t.RequestID, string(payout.StatusDeferred), b.BatchID, attempt))
		if err != nil {
			return nil, nil, 0, err
		}
		statuses = append(statuses, r)
	}
	rec := &kgo.Record{Topic: e.cfg.Topics.BatchesDeferred, Key: []byte(b.BatchID), Value: v}
	if h, ok := j.lookedHeader(wait); ok {
		rec.Headers = append(rec.Headers, h)
	}
	if !notBefore.Before(j.nextDayStart()) {
		rec.Context = context.WithValue(context.Background(), waitsLong{}, true)
	}
	return rec, statuses, nb.Attempt, nil
}

// reject handles a validation refusal: nothing was created; the
// reservation goes back and every request gets REJECTED with Wompi's code.
// The refusal is recorded in the batch's record before any REJECTED is
// produced: an attempt that reads the batch again, while those REJECTED
// are perhaps on the topic (their produce failed unanswered), emits the
// same ones and never posts the batch again (rejectedBefore): a second
// POST, accepted, would pay requests the topic says are REJECTED.
func (j *job) reject(err error) error {
	re, _ := railError(err)
	r := newRefusal(cmp.Or(re.Code, string(payout.ReasonWompiRejected)), re.Message, false)
	if err := j.recordRefusal(r, statePosting); err != nil {
		return err
	}
	j.log.Warn("dispatch: Wompi rejected the batch", "code", r.code, "message", r.message, "http_status", re.HTTPStatus)
	return j.rejectAs(r)
}

// recordRefusal records r as every kept request's refusal in the batch's
// record, from one of the states from, which it moves to posting.
func (j *job) recordRefusal(r refusal, from ...string) error {
	refused := make(map[string]refusal, len(j.keep))
	for _, i := range j.keep {
		refused[j.b.Transactions[i].RequestID] = r
	}
	_, err := j.e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID, from, statePosting, refusedFields(refused)...)
	return err
}

// rejectedBefore returns the refusal an earlier attempt recorded for the
// batch (reject, poison), if one did.
func (j *job) rejectedBefore(c claim) (refusal, bool) {
	for _, i := range j.keep {
		if r, ok := c.refused[j.b.Transactions[i].RequestID]; ok {
			return r, true
		}
	}
	return refusal{}, false
}

// rejectAs gives the reservation back (Release is safe to repeat) and
// emits REJECTED r for every kept request, with the batch's REJECTED, then
// records the batch rejected.
func (j *job) rejectAs(r refusal) error {
	e, b := j.e, j.b
	if _, rerr := e.budget.Release(j.hard, j.res); rerr != nil {
		return rerr
	}
	var recs []*kgo.Record
	for _, i := range j.keep {
		t := &b.Transactions[i]
		rec, err := e.statusRecord(b, t, payout.StatusRejected, r.code, r.message, nil, nil,
			payout.EventID("status", t.RequestID, string(payout.StatusRejected), b.BatchID))
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	drops, err := e.dropRecords(b, j.src, j.drops, nil)
	if err != nil {
		return err
	}
	recs = append(recs, drops...)
	msg := r.message
	bs, err := e.batchStatusRecord(b, nil, payout.BatchRejected, &msg, j.keep)
	if err != nil {
		return err
	}
	// The batch's REJECTED first: a request's REJECTED on the topic
	// implies it (rejectedOnTopic).
	j.ungated = true
	if err := j.produce(bs); err != nil {
		return err
	}
	if err := j.produce(recs...); err != nil {
		return err
	}
	// The requestIds stay in the duplicate index: REJECTED is final, and a
	// republished copy is a duplicate, never a second lifecycle.
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID,
		[]string{stateClaimed, stateDeferred, statePosting}, stateRejected); err != nil {
		return err
	}
	e.m.batches.WithLabelValues("rejected").Inc()
	return nil
}

// finish records a batch Wompi accepted: state posted, the transaction
// mapping for the tracker, SUBMITTED per request and BatchStatusChanged,
// then state done.
func (j *job) finish(payoutID string) error {
	e, b := j.e, j.b
	t := time.Now()
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID,
		[]string{stateClaimed, stateDeferred, statePosting, statePosted}, statePosted, "payoutId", payoutID); err != nil {
		return err
	}
	want := make(map[string]int, len(b.Transactions)) // requestId -> position
	for _, i := range j.keep {
		want[b.Transactions[i].RequestID] = i
	}
	// A payee dropped for its bank that an earlier POST may have carried
	// (verdictUnbanked; no lookup proved the batch absent) is SUBMITTED if
	// the payout lists it, else REJECTED: the listing waits for it too, and
	// a listing that still lacks it is taken as proof only when it holds
	// every transaction the payout counts (unbankedListed).
	var carried []string
	if !j.absentProven {
		for _, d := range j.drops {
			if d.unbanked {
				rid := b.Transactions[d.idx].RequestID
				want[rid] = d.idx
				carried = append(carried, rid)
			}
		}
	}
	txByRef, listed, err := j.transactions(payoutID, want)
	if err != nil {
		return err
	}
	// A kept payee that a payout found by reference (not created by this
	// attempt's POST, which carried every kept payee) does not list may be
	// one an earlier attempt dropped for its bank (the bank table it read
	// lacked it) before posting the batch without it, that attempt's
	// REJECTED lost with it (a crash, a closed client) and our state with
	// Redis: the recovery found the payee in no payout and no REJECTED of
	// it on the status topic, so this attempt, reading a table that lists
	// the bank, kept it. The adopted payout will never pay it, and no
	// status would ever end it (SUBMITTED naming a payout without it, or
	// nothing after a loss). Once the listing is the payout's word
	// (unbankedListed) and names every transaction it holds, it is
	// REJECTED as the earlier attempt had it: never posted again, so never
	// paid twice.
	var unheld map[int]bool
	if !j.created {
		var absent []string
		for _, i := range j.keep {
			if rid := b.Transactions[i].RequestID; !hasRef(txByRef, rid) {
				absent = append(absent, rid)
				if unheld == nil {
					unheld = map[int]bool{}
				}
				unheld[i] = true
			}
		}
		carried = append(carried, absent...)
		if listed.refless > 0 || foreignRefs(b, txByRef) {
			// A transaction listed without its reference, or under one
			// that names no request of the batch (a reference Wompi wrote
			// otherwise), may be one of them: they are SUBMITTED without a
			// transaction id, as before.
			unheld = nil
		}
	}
	byPatience, err := j.unbankedListed(payoutID, carried, txByRef, listed)
	if err != nil {
		return err
	}
	if byPatience {
		// A listing short of the payout's count proves a payee absent
		// only as a drop's guess (refused at creation); a kept payee may
		// be the transaction it never reads (a page race that repeats)
		// and paid: SUBMITTED without a transaction id, never REJECTED.
		unheld = nil
	}
	if !j.created {
		j.compareAdopted(payoutID, want)
	}
	t = e.m.stage("list", t)
	// What Wompi holds is the truth: every transaction of the payout that
	// belongs to this batch is SUBMITTED (even one a drop rule would now
	// leave out), and a kept request Wompi does not list is SUBMITTED
	// without a transaction id for the tracker to resolve, unless the
	// payout was adopted and proved not to hold it (unheld: REJECTED).
	submittedPos := make([]int, 0, len(j.keep))
	inPayout := make([]bool, len(b.Transactions))
	var drops []drop
	for _, i := range j.keep {
		if unheld[i] {
			rid := b.Transactions[i].RequestID
			drops = append(drops, drop{idx: i, reason: payout.ReasonUnknownBankID,
				message: "the payout Wompi holds for the batch does not carry the request: an attempt that found no bankId for its bank code left it out",
				eventID: payout.EventID("status", rid, "UNKNOWN_BANK", b.BatchID)})
			continue
		}
		submittedPos = append(submittedPos, i)
		inPayout[i] = true
	}
	if len(unheld) > 0 {
		j.log.Error("dispatch: the payout found by reference does not carry some kept requests (left out by an earlier attempt whose REJECTED was lost); REJECTED again",
			"payout_id", payoutID, "requests", len(unheld))
	}
	for _, d := range j.drops {
		if _, ok := txByRef[b.Transactions[d.idx].RequestID]; ok && !inPayout[d.idx] && d.reason != payout.ReasonDuplicateRequest {
			submittedPos = append(submittedPos, d.idx)
			inPayout[d.idx] = true
			continue
		}
		drops = append(drops, d)
	}
	missing := 0
	mapping := make([]submitted.Transaction, 0, len(submittedPos))
	recs := make([]*kgo.Record, 0, len(submittedPos)+len(drops)+1)
	then := make([]*kgo.Record, 0, len(submittedPos)+1)
	gate := make([]track.GateItem, 0, len(submittedPos)+1)
	// The batch's events share one arena and one occurredAt: they are
	// the outcome of one POST and one listing.
	arena, at := e.takeArena(2*len(submittedPos)), e.now()
	// The events' transaction ids, one slot per payee: a pointer into a
	// map lookup's copy would move that copy to the heap, once per payee.
	txIDs := make([]string, len(submittedPos))
	var total int64
	for k, i := range submittedPos {
		t := &b.Transactions[i]
		total += t.AmountInCents
		var txID *string
		tx, listedTx := txByRef[t.RequestID]
		if listedTx {
			txIDs[k] = tx.ProviderID
			txID = &txIDs[k]
			mapping = append(mapping, submitted.Transaction{TransactionID: tx.ProviderID, RequestID: t.RequestID, BatchID: b.BatchID,
				PayoutID: payoutID, AmountInCents: t.AmountInCents, OriginAccountID: b.OriginAccountID})
		} else {
			missing++
		}
		r, err := e.statusRecordIn(arena, at, b, t, payout.StatusSubmitted, "", "", &payoutID, txID,
			arena.eventID("status", t.RequestID, string(payout.StatusSubmitted), b.BatchID))
		if err != nil {
			return err
		}
		recs = append(recs, r)
		// The listing is a poll: a transaction it read PENDING gets its
		// PENDING here, after SUBMITTED and under the same gate attempt
		// (one compare-and-set for both), with the eventId the tracker's
		// poll would give it.
		item := track.GateItem{ID: t.RequestID, To: string(payout.StatusSubmitted), Ref: deref(txID)}
		var p *kgo.Record
		if listedTx && tx.Status == payout.StatusPending {
			item.To, item.Via = string(payout.StatusPending), string(payout.StatusSubmitted)
			if p, err = e.pendingRecord(arena, at, b, t, &payoutID, txID); err != nil {
				return err
			}
		}
		then = append(then, p)
		gate = append(gate, item)
	}
	// The listing serves as the payout's first poll when it read every
	// transaction PENDING, each one a request of this batch: the tracker's
	// first poll then comes one poll interval later, and once every
	// PENDING is emitted the hand-off holds the listing's digest, so a poll
	// that reads the same emits nothing again. (A request not listed would
	// leave its PENDING unemitted, so no digest either: missing == 0 only
	// spares scheduling the first poll late and moving it back.)
	asFirstPoll := listed.pending && missing == 0 && listed.n == len(submittedPos)
	firstPoll := e.now()
	if asFirstPoll {
		firstPoll = firstPoll.Add(track.FirstPollInterval)
	}
	if missing > 0 {
		j.log.Error("dispatch: Wompi does not list some transactions of the payout; SUBMITTED without transaction id",
			"payout_id", payoutID, "missing", missing)
	}
	if err := e.handoff.Record(j.hard, submitted.Payout{PayoutID: payoutID, BatchID: b.BatchID, OriginAccountID: b.OriginAccountID,
		PaymentType: string(b.PaymentType), TotalAmountInCents: total, TransactionCount: len(submittedPos), SubmittedAt: e.now()},
		mapping, firstPoll); err != nil {
		return fmt.Errorf("dispatch: record hand-off: %w", err)
	}
	t = e.m.stage("record", t)
	dr, err := e.dropRecords(b, j.src, drops, nil)
	if err != nil {
		return err
	}
	bs, err := e.batchStatusRecord(b, &payoutID, payout.BatchPending, nil, submittedPos)
	if err != nil {
		return err
	}
	recs = append(recs, bs)
	then = append(then, nil)
	gate = append(gate, track.GateItem{Batch: true, ID: b.BatchID, To: string(payout.BatchPending), Ref: payoutID})
	confirmed, err := j.produceGatedThen(recs, then, gate, dr)
	e.m.listedPending.Add(float64(confirmed))
	if err != nil {
		// A record may still be the producer's (a closed client fails
		// records it may have sent): the arena is left to the collector.
		return err
	}
	// Every record of the arena given to the producer finished: the next
	// batch may write over them.
	e.putArena(arena)
	t = e.m.stage("produce", t)
	switch {
	case asFirstPoll && confirmed == len(submittedPos):
		// Every request's PENDING is on the topic: the tracker's poll need
		// not emit them again. (The batch's own status is read at every
		// poll; a webhook often emits its PENDING first.)
		if err := e.handoff.SetPollDigest(j.hard, payoutID, listed.digest); err != nil {
			j.log.Warn("dispatch: record the listing's poll digest", "payout_id", payoutID, "err", err)
		}
	case asFirstPoll:
		// Some status was refused (another worker's is further along, or
		// perhaps written): the tracker polls now and emits what it reads.
		if err := e.handoff.Reschedule(j.hard, payoutID, e.now()); err != nil {
			j.log.Warn("dispatch: move the first poll to now", "payout_id", payoutID, "err", err)
		}
	}
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID, []string{statePosted}, stateDone); err != nil {
		return err
	}
	e.m.stage("done", t)
	e.m.batches.WithLabelValues("submitted").Inc()
	e.m.transactions.Add(float64(len(submittedPos)))
	j.log.Info("dispatch: batch submitted", "payout_id", payoutID, "transactions", len(submittedPos), "dropped", len(drops))
	return nil
}

// compareAdopted compares the amounts of a payout found by reference (not
// created by this attempt's own POST) with the requests of the batch that
// it lists (want: requestId -> position), as a single-payout rail's lookup
// does: our reference names the payout, so it is adopted and never posted
// again whatever it holds; but a transaction for another amount than its
// request's (the reference or the requestIds used before: the same
// requests sent again with other amounts past RecordTTL and DEDUPE_WINDOW,
// or a payout another system created under our reference) pays what the
// request's events do not say. Each is counted and logged. A listing that
// fails is logged and the batch goes on: the comparison only reports.
func (j *job) compareAdopted(payoutID string, want map[string]int) {
	e, b := j.e, j.b
	start := time.Now()
	ctx, cancel := context.WithTimeout(j.hard, e.cfg.HTTPTimeout)
	defer cancel()
	var err error
	for it, ierr := range e.batchRail.Items(ctx, payoutID) {
		if ierr != nil {
			err = ierr
			break
		}
		i, ok := want[it.ID]
		if !ok || it.AmountInCents == 0 || it.AmountInCents == b.Transactions[i].AmountInCents {
			continue
		}
		e.m.amountMismatch.WithLabelValues(string(rail.Wompi)).Inc()
		j.log.Error("dispatch: the payout found by reference pays a request of the batch for another amount; adopted, never posted again",
			"payout_id", payoutID, "request_id", it.ID, "transaction_id", it.ProviderID,
			"amount", b.Transactions[i].AmountInCents, "provider_amount", it.AmountInCents)
	}
	e.m.observe("payout_transactions", start, err)
	if err != nil {
		j.log.Warn("dispatch: could not compare the adopted payout's amounts with the batch's", "payout_id", payoutID, "err", err)
	}
}

// produceGated produces the SUBMITTED events and the batch's PENDING
// (gated[i] for recs[i]) through the tracker's compare-and-set, with the
// ungated records (drops) alongside. A request a webhook or a poll already
// moved past SUBMITTED gets no SUBMITTED at all: the status topic never
// reads APPROVED then SUBMITTED. Two pipelined Redis round trips whatever
// the batch size. The granted keys stay held (their leases renewed by the
// gate) while busy ones are waited for and while the produce runs, however
// long either takes.
func (j *job) produceGated(recs []*kgo.Record, gated []track.GateItem, ungated []*kgo.Record) error {
	_, err := j.produceGatedThen(recs, nil, gated, ungated)
	return err
}

// produceGatedThen is produceGated where an item may carry two events:
// then[i], when not nil, is the event of gated[i]'s status (a PENDING the
// payout's listing read) and recs[i] the SUBMITTED before it. The first
// events go in one produce; each then-event goes in a second one, and only
// once its SUBMITTED is known written, so the topic never holds such a
// PENDING without its SUBMITTED before it. An item counts as written when
// the event of its status was; otherwise it is abandoned at the highest
// status whose event went to the producer: at PENDING when the PENDING
// failed (a retry then emits neither event, SUBMITTED may not follow it,
// and the tracker's poll emits PENDING), at SUBMITTED when the PENDING was
// never sent (a retry emits both again, under the same eventIds). It
// returns how many of the items with a then-event were confirmed.
func (j *job) produceGatedThen(recs, then []*kgo.Record, gated []track.GateItem, ungated []*kgo.Record) (int, error) {
	e := j.e
	out := append([]*kgo.Record(nil), ungated...)
	type ticket struct {
		t     *track.GateTicket
		first []*kgo.Record // the first event of each Ours item
		then  []*kgo.Record // the event of its status after first, when it has one (nil otherwise)
	}
	var tickets []ticket
	// Some records may fail (franz-go fails one only once it is known not
	// to be written): those are abandoned, the others confirmed, so that
	// an abandoned status is never one on the topic.
	sent := make(map[*kgo.Record]bool, len(recs)+len(then)+len(ungated))
	failed := map[*kgo.Record]bool{}
	written := func(r *kgo.Record) bool { return sent[r] && !failed[r] }
	// end ends every ticket as its records ended: an item whose status
	// event was written is confirmed; one whose status event (a PENDING
	// after its SUBMITTED) was never sent is abandoned at its Via, since at
	// most the SUBMITTED went out; any other is abandoned.
	end := func() error {
		var first error
		for _, tk := range tickets {
			err := e.gate.EndAs(context.WithoutCancel(j.hard), tk.t, func(i int) track.GateEnd {
				switch r := cmp.Or(tk.then[i], tk.first[i]); {
				case written(r):
					return track.GateWritten
				case tk.then[i] != nil && !sent[r]:
					return track.GateViaOnly
				}
				return track.GateFailed
			})
			if err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	leave := func() {
		// Closed with the events perhaps sent: the keys stay held for one
		// lease, so no later status can be emitted before them.
		for _, tk := range tickets {
			e.gate.Leave(tk.t)
		}
	}
	waiting := make([]int, len(gated)) // the items still without a verdict
	for i := range waiting {
		waiting[i] = i
	}
	if j.foundAfterLoss {
		// Redis lost our records after the payout was created: the tracker
		// may have emitted PENDING or a final status for these requests
		// before the loss, and its record of that is gone too. A SUBMITTED
		// now could follow them, so none is emitted: the tracker's statuses
		// follow BATCHED directly.
		j.log.Warn("dispatch: batch found at Wompi after a Redis data loss; SUBMITTED and the batch's PENDING are not emitted",
			"statuses", len(gated))
		e.m.lateSkipped.Add(float64(len(gated)))
		waiting = nil
	}
	for attempt := 0; len(waiting) > 0; attempt++ {
		items := make([]track.GateItem, len(waiting))
		for k, i := range waiting {
			items[k] = gated[i]
		}
		t, err := e.gate.Begin(j.hard, j.statusSince, items)
		if err != nil {
			_ = end()
			return 0, fmt.Errorf("dispatch: %w", err)
		}
		tk := ticket{t: t, first: make([]*kgo.Record, len(items)), then: make([]*kgo.Record, len(items))}
		tickets = append(tickets, tk)
		var busy []int
		for k, v := range t.Verdicts {
			switch v {
			case track.GateOurs:
				i := waiting[k]
				out = append(out, recs[i])
				tk.first[k] = recs[i]
				if then != nil {
					tk.then[k] = then[i]
				}
			case track.GateBusy:
				busy = append(busy, waiting[k])
			default:
				e.m.lateSkipped.Inc()
			}
		}
		waiting = busy
		if len(waiting) > 0 {
			if err := sleep(j.soft, e.backoff(attempt)); err != nil {
				_ = end()
				return 0, err
			}
		}
	}
	// A produce given up as perhaps written: after the client's close
	// nothing more is written, and the keys stay held for one lease. Given
	// up by a stopped worker of a running client (a revoke, late), the
	// records are still the producer's and may land at any time: the
	// tickets keep their leases until franz-go has their results, and end
	// as those say (settle, run by holdLease before the batch's lease is
	// let go), so no later status can be emitted before them.
	settle := func(res kgo.ProduceResults, closed bool) {
		for _, r := range res {
			failed[r.Record] = r.Err != nil
		}
		if closed {
			leave()
			return
		}
		if err := end(); err != nil {
			j.log.Warn("dispatch: end the status keys of a produce answered late", "err", err)
		}
	}
	produce := func(rs []*kgo.Record) error {
		for _, r := range rs {
			sent[r] = true
		}
		res, late, err := j.produceEach(settle, rs...)
		for _, r := range res {
			if r.Err != nil {
				failed[r.Record] = true
			}
		}
		if perhapsWritten(err) && !late {
			leave()
		}
		return err
	}
	firstErr := produce(out)
	if perhapsWritten(firstErr) {
		return 0, firstErr
	}
	var second []*kgo.Record
	for _, tk := range tickets {
		for k, r := range tk.then {
			if r != nil && !failed[tk.first[k]] {
				second = append(second, r)
			}
		}
	}
	if len(second) > 0 {
		if e.betweenProduces != nil {
			e.betweenProduces()
		}
		if err := produce(second); err != nil {
			if perhapsWritten(err) {
				return 0, err
			}
			firstErr = cmp.Or(firstErr, err)
		}
	}
	confirmed := 0
	for _, tk := range tickets {
		for _, r := range tk.then {
			if r != nil && written(r) {
				confirmed++
			}
		}
	}
	if err := end(); err != nil {
		return 0, cmp.Or(firstErr, err)
	}
	return confirmed, firstErr
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// listing is what the payout's transactions listing read, beyond the
// mapping: the digest a poll would compute from it (track.PollDigest), how
// many transactions it held (with or without a reference), and whether
// every one was PENDING (mapped).
type listing struct {
	digest  string
	n       int
	pending bool
	// refless is how many of the n were listed without a reference.
	refless int
}

func hasRef(txByRef map[string]rail.ItemRef, rid string) bool {
	_, ok := txByRef[rid]
	return ok
}

// foreignRefs reports whether the listing holds a reference that is no
// requestId of the batch.
// (A requestId twice in the batch is counted once.)
func foreignRefs(b *payout.Batch, txByRef map[string]rail.ItemRef) bool {
	ours := make(map[string]struct{}, len(txByRef))
	for i := range b.Transactions {
		if rid := b.Transactions[i].RequestID; hasRef(txByRef, rid) {
			ours[rid] = struct{}{}
		}
	}
	return len(ours) < len(txByRef)
}

// transactions maps reference (requestId) -> Wompi transaction (its id and
// status) for the payout, asking again a few times while some wanted
// reference is missing.
func (j *job) transactions(payoutID string, want map[string]int) (map[string]rail.ItemRef, listing, error) {
	const tries = 5
	for attempt := 0; ; attempt++ {
		start := time.Now()
		out := make(map[string]rail.ItemRef, len(want))
		var digest track.PollDigest
		digest.Expect(len(want))
		l := listing{pending: true}
		var err error
		ctx, cancel := context.WithTimeout(j.hard, j.e.cfg.HTTPTimeout)
		for tx, terr := range j.e.batchRail.ItemRefs(ctx, payoutID) {
			if terr != nil {
				err = terr
				break
			}
			// As the tracker's poll sums it up: a PENDING transaction has
			// no failure code. A transaction read twice (offset pages
			// over a sort key the payout's transactions tie on: one is
			// then read twice and another never) counts once: l.n is how
			// many the listing holds, which unbankedListed compares with
			// the payout's count.
			if !digest.Add(tx.ProviderID, tx.ProviderStatus, tx.ID, "") {
				continue
			}
			l.n++
			l.pending = l.pending && tx.Status == payout.StatusPending
			if tx.ID != "" {
				out[tx.ID] = tx
			} else {
				l.refless++
			}
		}
		cancel()
		l.digest = digest.String()
		j.e.m.observe("payout_transactions", start, err)
		complete := err == nil
		for ref := range want {
			if _, ok := out[ref]; !ok {
				complete = false
				break
			}
		}
		if complete || (err == nil && attempt >= tries) {
			return out, l, nil
		}
		j.e.m.retries.WithLabelValues("transactions").Inc()
		// soft: giving up here is safe, the record says "posted".
		if err := sleep(j.soft, j.e.backoff(attempt)); err != nil {
			return nil, listing{}, err
		}
	}
}

// unbankedListed returns nil when the listing may be taken as the payout's
// word on the payees of carried (dropped for their bank, perhaps carried
// by an earlier POST; or kept, and not listed by an adopted payout): each
// is listed, or the listing holds every
// transaction the payout counts (its totalTransactions, found by
// reference; as the tracker's poll reads it). Otherwise (fewer listed, or
// the payout not yet found by reference) the listing may be behind the
// write: a payee it lacks may be paid, and its REJECTED would be false, so
// the batch is tried again (its record says posted) rather than ended.
// byPatience: the listing was taken short (a final payout past
// track.ShortListingPatience).
func (j *job) unbankedListed(payoutID string, carried []string, txByRef map[string]rail.ItemRef, listed listing) (byPatience bool, err error) {
	missing := 0
	for _, rid := range carried {
		if _, ok := txByRef[rid]; !ok {
			missing++
		}
	}
	if missing == 0 {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(j.hard, j.e.cfg.HTTPTimeout)
	bs, err := j.e.batchRail.FindBatches(ctx, j.b.BatchID)
	cancel()
	if err != nil {
		return false, fmt.Errorf("dispatch: payout %s does not list %d payees that an earlier POST may have carried, and its count could not be read: %w",
			payoutID, missing, err)
	}
	for _, pb := range bs {
		if pb.ProviderID != payoutID {
			continue
		}
		// Wompi counts a payee it refused at creation and never lists it
		// (a bank leaving the directory refuses such a payee): a final
		// payout whose listing is still short after the tracker's patience
		// with it (track.ShortListingPatience) is taken at its listing's
		// word, as the tracker's poll takes it, rather than tried for
		// ever with its partition held.
		created := pb.CreatedAt
		if created.IsZero() {
			created = j.firstPostAt
		}
		// A count of 0 is none given (the field is known from an SDK, not
		// from Wompi's documents; a payout holds one transaction at
		// least): the listing may be short, and is read again as one.
		short := pb.ItemCount > listed.n || pb.ItemCount <= 0
		if short && pb.Status.Final() && !created.IsZero() &&
			j.e.now().Sub(created) >= track.ShortListingPatience {
			j.log.Error("dispatch: final payout still lists fewer transactions than it counts; the payees dropped for their bank it does not list are taken as refused at creation",
				"payout_id", payoutID, "listed", listed.n, "transactions", pb.ItemCount, "missing", missing)
			return true, nil
		}
		if short {
			return false, fmt.Errorf("dispatch: payout %s lists %d of its %d transactions (0: no count given), without %d payees that an earlier POST may have carried: read again",
				payoutID, listed.n, pb.ItemCount, missing)
		}
		return false, nil
	}
	return false, fmt.Errorf("dispatch: payout %s does not list %d payees that an earlier POST may have carried, and the lookup by reference does not show it yet: read again",
		payoutID, missing)
}

// addCapped adds a payee's amount to a reservation's, capped at the
// largest int64: a sum that would overflow (a batch of an older ingest)
// reserves more than any daily limit grants, never a wrapped, small amount.
func addCapped(sum, amount int64) int64 {
	if s, ok := payout.AddCents(sum, amount); ok {
		return s
	}
	return math.MaxInt64
}
