package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
)

// ensureEpoch returns the current, ready epoch id. When Redis has none (a
// fresh or flushed Redis) one replica runs the recovery under a lock while
// the others wait for it; a recovery whose replica died is taken over once
// its lock expires. No epoch, and so no claim, comes before this process's
// start record (starts.go).
func (e *Engine) ensureEpoch(ctx context.Context) (id string, began time.Time, err error) {
	if err := e.announce(ctx); err != nil {
		return "", time.Time{}, err
	}
	id, began, err = e.readyEpoch(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	e.hadEpoch.Store(true)
	return id, began, nil
}

// checkRunID says, once at start, when Redis gives no run id (luaServer):
// the epoch is then stamped "" and a Redis restarted from an older
// snapshot, or failed over to a replica that missed the last writes,
// cannot be told from a healthy one.
func (e *Engine) checkRunID(ctx context.Context) {
	vals, err := epochScript.Run(ctx, e.st.rdb, []string{e.st.epochKey()}).StringSlice()
	if err != nil || len(vals) != 7 {
		e.log.Warn("dispatch: read Redis's run id", "err", err)
		return
	}
	if vals[4] != "" {
		e.m.runIDUnknown.Set(0)
		return
	}
	e.m.runIDUnknown.Set(1)
	e.log.Error("dispatch: Redis gives no run id (INFO server refused by an ACL or a renamed command, or not a redis-server): " +
		"a Redis restarted from an older snapshot or failed over to a replica that missed the last writes cannot be told " +
		"from a healthy one; allow INFO (+info) to the dispatcher's Redis user")
}

// checkEviction reads (evictionScript) whether Redis may evict keys
// (maxmemory set and a policy other than noeviction), and turns the new-
// payee proof off while it may: an evicted duplicate-index entry would let
// SET NX index a paid payee "for the first time" and post it without a
// lookup (newPayeeProof). An answer it cannot read counts as "may evict".
// The script also takes the epoch's completeness away, for every replica,
// while Redis may evict or once it has evicted keys since the epoch was
// completed: the proof then waits for a relisting of the rails
// (completeEpoch), which runs only while Redis evicts nothing, and
// completes it only if Redis evicted none under the epoch (completeScript).
// It runs at start and every evictionCheckEvery after.
func (e *Engine) checkEviction(ctx context.Context) {
	res, err := evictionScript.Run(ctx, e.st.rdb, []string{e.st.epochKey()}).StringSlice()
	policy, evicted, dropped, safe := "", "", "", false
	if err == nil && len(res) == 5 {
		policy, evicted, dropped, safe = res[0], res[2], res[3], res[4] == "1"
	} else if err == nil {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if dropped == "1" {
		e.log.Error("dispatch: Redis may evict keys, or evicted some since the epoch was completed: every single-payout payee is looked up "+
			"before its POST until the rails are listed again with Redis evicting nothing",
			"maxmemory_policy", policy, "evicted_keys", evicted)
	}
	was := e.mayEvict.Swap(!safe)
	if safe {
		e.m.mayEvict.Set(0)
		if was {
			e.log.Info("dispatch: Redis evicts no keys: single-payout payees the duplicate index proves new are posted without a lookup again, once the epoch is complete")
		}
		return
	}
	e.m.mayEvict.Set(1)
	if !was {
		e.log.Error("dispatch: Redis may evict keys (maxmemory set with a policy other than noeviction, or INFO unreadable): "+
			"every single-payout payee is looked up before its POST until it cannot; set maxmemory-policy noeviction and allow INFO (+info)",
			"maxmemory_policy", policy, "err", err)
	}
}

// evictionCheckEvery is how often checkEviction reads Redis's policy again.
const evictionCheckEvery = time.Minute

// recoveryWait is how long after a Redis loss a POST begun before it may
// still land. A job starts a call that POSTs only while its lease was
// confirmed at most leaseFresh's limit ago (a renewal interval plus
// RecoveryGrace minus HTTPTimeout), and the confirmation came before the
// loss. The call gives up after HTTPTimeout (a single-payout create may
// fetch a token before its POST, within the same deadline), and the
// provider may still apply the POST up to RecoveryGrace - HTTPTimeout
// after that: within RecoveryGrace of the call's start. So: the limit plus
// RecoveryGrace, which is RecoveryGrace plus a renewal interval plus the
// margin RecoveryGrace - HTTPTimeout. (Without the margin, a POST sent by
// a replica cut off from Redis at the fence's limit and applied late
// could land after the rebuild: a helper review.)
//
// That is this process's own; a recovery waits the longest of any live
// dispatcher's (peerWaits).
func (e *Engine) recoveryWait() time.Duration {
	w, _ := e.waitsOf(e.cfg.HTTPTimeout, e.cfg.RecoveryGrace, e.cfg.LeaseTTL)
	return w
}

// readyEpoch is ensureEpoch's wait for a ready epoch.
func (e *Engine) readyEpoch(ctx context.Context) (string, time.Time, error) {
	for {
		id, ready, began, err := e.st.epochBegun(ctx)
		if err != nil {
			return "", time.Time{}, err
		}
		if ready {
			if e.railsMissing.Swap(false) { // a recovery ran elsewhere
				e.m.railsMissing.Reset()
			}
			return id, began, nil
		}
		if e.railsMissing.Load() {
			// This process cannot recover (missingRails): the rails it
			// lacks and those the start records name do not change while
			// it runs. It leaves the lock to the replicas that can, and
			// asks them to run it: they may have no batch that needs it
			// (this process may hold every partition with work).
			if err := e.st.rdb.Set(ctx, e.st.wantedKey(), e.st.owner, wantedFor*e.cfg.PollInterval).Err(); err != nil {
				e.log.Warn("dispatch: ask the other replicas for a recovery", "err", err)
			}
			if err := sleep(ctx, e.cfg.PollInterval); err != nil {
				return "", time.Time{}, err
			}
			continue
		}
		lock, ok, err := e.takeRecoveryLock(ctx, e.st.owner)
		if err != nil {
			return "", time.Time{}, err
		}
		if ok {
			id, err := e.recover(ctx, lock.lost)
			lock.release()
			if err == nil {
				// When the recovery began, from the epoch it made ready
				// (a zero time would skip rejectedOnTopic's look).
				rid, ready, began, rerr := e.st.epochBegun(ctx)
				if rerr != nil {
					return "", time.Time{}, rerr
				}
				if ready && rid == id {
					return id, began, nil
				}
				continue // the epoch changed since: read it again
			}
			if ctx.Err() != nil {
				return "", time.Time{}, err
			}
			e.log.Error("dispatch: recovery failed; will retry", "err", err)
		}
		if err := sleep(ctx, e.cfg.PollInterval); err != nil {
			return "", time.Time{}, err
		}
	}
}

// wantedFor is how many poll intervals a request for a recovery
// (store.wantedKey) lives after the last replica that asked for it.
const wantedFor = 5

// answerRecoveryWanted runs the recovery, once every poll interval at
// most, while another replica asks for one it cannot run (readyEpoch) and
// this replica can list every rail: without it, a replica that can recover
// but holds no partition with work would never recover, and the one that
// holds the work would wait for ever. One EXISTS per poll interval.
func (e *Engine) answerRecoveryWanted(ctx context.Context) {
	for sleep(ctx, e.cfg.PollInterval) == nil {
		if e.railsMissing.Load() {
			continue
		}
		if n, err := e.st.rdb.Exists(ctx, e.st.wantedKey()).Result(); err != nil || n == 0 {
			continue
		}
		if _, _, err := e.ensureEpoch(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("dispatch: the recovery another replica asked for failed; will retry", "err", err)
		}
	}
}

// recover runs while holding the recovery lock (lost is closed if it is
// taken from us): it writes a new epoch in state "rebuilding", waits the
// grace period so any POST started before the loss has landed or failed
// (not on a first start: starts.go), rebuilds the duplicate index from the
// rails' listings and, but on a first start, from the REJECTED on the
// status topic (indexRejected), and marks the epoch ready.
func (e *Engine) recover(ctx context.Context, lost <-chan struct{}) (string, error) {
	// Another replica may have finished a recovery between our read and
	// our lock.
	if id, ready, err := e.st.epoch(ctx); err != nil {
		return "", err
	} else if ready {
		return id, nil
	}
	// Every rail a dispatcher has paid through must be listed.
	missing, unlisted, err := e.missingRails(ctx)
	if err != nil {
		return "", err
	}
	if len(missing) > 0 {
		e.m.railsMissing.Reset()
		for _, n := range missing {
			e.m.railsMissing.WithLabelValues(string(n)).Set(1)
		}
		if !e.railsMissing.Swap(true) {
			e.reads.Go(e.watchRecovered)
		}
		return "", fmt.Errorf("dispatch: this replica cannot run the recovery: dispatchers that pay through %v have started on this Kafka "+
			"(TOPIC_DISPATCHER_STARTS), and this one has no credentials to list what those rails paid; a replica that has them must run it "+
			"(or, if those rails are retired for good, name them in DISPATCHER_RETIRED_RAILS)", missing)
	}
	epoch := randomID()
	start := time.Now()
	if err := recoveryStartScript.Run(ctx, e.st.rdb, []string{e.st.epochKey()}, epoch, epochLayout,
		start.UnixMilli()).Err(); err != nil {
		return "", fmt.Errorf("dispatch: write epoch: %w", err)
	}
	// The budgets' Redis process before anything is counted into them:
	// they are stamped with it at the end only if it still runs (a
	// failover in between may have lost what was booked).
	budgetServer, err := e.budget.Server(ctx)
	if err != nil {
		return "", err
	}
	// Read only now, with the epoch written (starts.go).
	first, why := e.firstStart(ctx)
	wait, _, err := e.peerWaits(ctx)
	if err != nil {
		return "", err
	}
	e.m.recoveries.Inc()
	var n, unindexed int
	skipped := time.Duration(0)
	if first {
		// The rails must list nothing either: a dispatcher of a version
		// from before the start records, or one given another
		// TOPIC_DISPATCHER_STARTS, writes no record here.
		payouts, indexed, _, err := e.rebuildIndex(ctx, epoch, nil)
		if err != nil {
			return "", err
		}
		if payouts == 0 {
			n = indexed
			e.m.firstStarts.Inc()
			if e.cfg.FreshKafka {
				// This program created the Kafka cluster and the Redis:
				// every dispatcher that ever claimed against this Redis
				// wrote a start record on this cluster, and there is only
				// ours. No POST can be in flight on any rail.
				e.log.Info("dispatch: Redis holds no state, this program created its Kafka cluster and its Redis, and no rail lists a payout: a first start, no grace wait on any rail",
					"epoch", epoch, "topic", e.cfg.Topics.DispatcherStarts)
			} else {
				// A single-payout POST of a dispatcher from before the
				// start records, in flight, may land after its rail was
				// listed: those rails' jobs wait out the grace before any
				// lookup (starts.go).
				skipped = wait - time.Since(start)
				e.log.Info("dispatch: Redis holds no state, no other dispatcher has ever started on this Kafka and no rail lists a payout: a first start, no grace wait for Wompi",
					"epoch", epoch, "topic", e.cfg.Topics.DispatcherStarts)
			}
		} else {
			first, why = false, fmt.Sprintf("the rails list %d payouts in the dedupe window", payouts)
		}
	}
	if !first {
		e.log.Warn("dispatch: Redis state missing: recovering (new epoch, grace wait, rebuild of the duplicate index from the rails' listings)",
			"epoch", epoch, "grace", wait, "window", e.cfg.DedupeWindow, "not_a_first_start", why)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-lost:
			return "", errors.New("dispatch: recovery lock lost during the grace period")
		case <-time.After(wait):
		}
		spent := newListedSpend(e.now())
		var err error
		if _, n, unindexed, err = e.rebuildIndex(ctx, epoch, spent); err != nil {
			return "", err
		}
		// A requestId ended REJECTED is consumed, and no rail lists it:
		// its REJECTED on the status topic is indexed too (indexRejected).
		rejected, err := e.indexRejected(ctx, epoch)
		if err != nil {
			return "", err
		}
		e.m.rejectedIndexed.Add(float64(rejected))
		e.log.Info("dispatch: recovery: requestIds ended REJECTED indexed from the status topic",
			"epoch", epoch, "topic", e.cfg.Topics.Status, "requests", rejected)
		// Before the epoch is ready, so before any batch of it reserves.
		if err := e.noteListed(ctx, spent); err != nil {
			return "", err
		}
		if err := e.bookWompi(ctx, spent); err != nil {
			return "", err
		}
	}
	select {
	case <-lost:
		return "", errors.New("dispatch: recovery lock lost during the rebuild")
	default:
	}
	// The budgets now hold what the rails list (a partial loss of their
	// last reservations was booked again above): they are stamped with the
	// Redis process holding them, and a later change of that process alone
	// (a Redis Cluster's {budget} master) ends the epoch (job.budgetsLost).
	if err := e.budget.Stamp(ctx, budgetServer); err != nil {
		return "", err
	}
	grace := ""
	if skipped > 0 {
		grace = strconv.FormatInt(max(skipped.Milliseconds(), 1), 10)
	}
	// The rails were listed after the grace only when it was waited: then
	// the index holds every payout posted before this epoch began
	// (newPayeeProof), unless a rail listed a payout without our id. A
	// first start's epoch is completed later (completeEpoch), unless no
	// POST from before it can exist at all (FreshKafka; its rails listed
	// no payout, so none without our id either).
	complete := ""
	switch {
	case e.mayEvict.Load():
		// Redis may evict what was just indexed: no proof from it
		// (checkEviction).
	case len(unlisted) > 0:
		// A live dispatcher pays through a rail retired here, which this
		// rebuild did not list (missingRails): no proof from it.
		e.log.Warn("dispatch: a rail retired here (DISPATCHER_RETIRED_RAILS) is still paid through by a live dispatcher, and this recovery did not list it: the epoch is not complete, every single-payout payee is looked up before its POST",
			"epoch", epoch, "rails", unlisted)
	case (!first || e.cfg.FreshKafka) && unindexed == 0:
		complete = "complete"
	case unindexed > 0:
		e.log.Warn("dispatch: a single-payout rail listed payouts without our id: the epoch is not complete, every single-payout payee is looked up before its POST",
			"epoch", epoch, "unindexed", unindexed)
	}
	firstMark := ""
	if first {
		firstMark = "first"
	}
	ok, err := finishRecoveryScript.Run(ctx, e.st.rdb, []string{e.st.epochKey(), e.st.graceKey()}, epoch, grace, complete, firstMark).Int()
	if err != nil {
		return "", fmt.Errorf("dispatch: finish recovery: %w", err)
	}
	if ok != 1 {
		return "", errors.New("dispatch: the epoch changed during recovery")
	}
	e.log.Info("dispatch: recovery done", "epoch", epoch, "requests_indexed", n,
		"took", time.Since(start).Round(time.Millisecond))
	return epoch, nil
}

// watchRecovered clears payouts_dispatcher_recovery_rails_missing once
// another replica has recovered (an epoch is ready), whether or not this
// one has a batch waiting for it.
func (e *Engine) watchRecovered() {
	for sleep(e.hard, e.cfg.PollInterval) == nil {
		if _, ready, err := e.st.epoch(e.hard); err == nil && ready {
			if e.railsMissing.Swap(false) {
				e.m.railsMissing.Reset()
			}
			return
		}
	}
}

// heldLock is the recovery lock while this replica holds it.
type heldLock struct {
	// lost is closed if the lock is taken from us while we hold it.
	lost <-chan struct{}
	// release stops renewing the lock and gives it up.
	release func()
}

// takeRecoveryLock takes the recovery lock as owner when no one holds it
// (ok), and keeps renewing it until lock.release is called. ok is false
// when someone else holds it. A recovery (readyEpoch) and a completion
// (completeEpoch) take it as different owners, so that neither renews or
// releases the other's.
func (e *Engine) takeRecoveryLock(ctx context.Context, owner string) (lock heldLock, ok bool, err error) {
	ok, err = e.st.rdb.SetNX(ctx, e.st.lockKey(), owner, time.Duration(e.st.lockTTLms)*time.Millisecond).Result()
	if err != nil {
		return heldLock{}, false, fmt.Errorf("dispatch: recovery lock: %w", err)
	}
	if !ok {
		return heldLock{}, false, nil
	}
	hctx, stop := context.WithCancel(ctx)
	l := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.holdLock(hctx, owner, l)
	}()
	return heldLock{lost: l, release: func() {
		stop()
		<-done
		_ = lockScript.Run(context.WithoutCancel(ctx), e.st.rdb, []string{e.st.lockKey()}, owner, e.st.lockTTLms, "release").Err()
	}}, true, nil
}

// holdLock renews the recovery lock, held as owner, until ctx ends; it
// closes lost if the lock was taken from us.
func (e *Engine) holdLock(ctx context.Context, owner string, lost chan<- struct{}) {
	t := time.NewTicker(time.Duration(e.st.lockTTLms/3) * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := lockScript.Run(ctx, e.st.rdb, []string{e.st.lockKey()}, owner, e.st.lockTTLms, "renew").Int()
			if err == nil && n == 0 {
				close(lost)
				return
			}
		}
	}
}

// listSingles indexes, under each rail's mark, every payout each
// single-payout rail created in the dedupe window, up to to (none when
// zero) (rebuildIndex, completeEpoch), and adds each to spent (when not
// nil). It
// returns how many payouts it listed, how many it indexed, and how many it
// could not (listed without our id: an epoch is then not complete, since
// the index cannot prove such a payee new).
func (e *Engine) listSingles(ctx context.Context, w *indexWriter, to time.Time, spent *listedSpend) (payouts, indexed, unindexed int, err error) {
	since := e.cfg.Now().Add(-e.cfg.DedupeWindow)
	for _, n := range slices.Sorted(maps.Keys(e.cfg.Singles)) {
		// Each rail lists by its business day: from that day's start.
		from := payout.DayIn(since, rail.Location(n)).StartIn(rail.Location(n))
		mark := listedMark(n)
		// A recovery's listing (to zero) is walked while no dispatcher
		// posts: a rail may refuse one that grew between pages (Frozen).
		// completeEpoch's is not: dispatchers post meanwhile.
		for p, err := range e.cfg.Singles[n].List(ctx, rail.ListFilter{From: from, To: to, Frozen: to.IsZero()}) {
			if err != nil {
				return 0, 0, 0, fmt.Errorf("dispatch: rebuild: list %s payouts: %w", n, err)
			}
			payouts++
			spent.add(n, p)
			if !payout.ValidReference(p.ID) {
				// No id, or one no requestId of ours can be (spaces
				// around it, say): the index cannot name it.
				e.m.unindexed.WithLabelValues(string(n)).Inc()
				unindexed++
				continue
			}
			if err := w.set(ctx, p.ID, mark, true); err != nil {
				return 0, 0, 0, err
			}
			if folded := strings.ToLower(p.ID); folded != p.ID {
				// The rail may echo our id in another case: the id in
				// lower case is marked suspect, with the form listed, so
				// a payee under it is looked up before any POST (never
				// proven new), under its id and that form, and the
				// lookup refuses to call it absent. The rail that listed
				// it is kept too (echoedOn): a batch of another rail,
				// whose lookup cannot see this rail's payout, takes the
				// mark for a duplicate.
				w.echo(folded, p.ID)
				w.echo(echoedOn(folded, n), "1")
				if err := w.set(ctx, folded, suspectMark, true); err != nil {
					return 0, 0, 0, err
				}
			}
			indexed++
		}
	}
	return payouts, indexed, unindexed, nil
}

// completeEpoch completes a first start's epoch (newPayeeProof), once its
// grace is over: it lists the single-payout rails again, indexes what they
// hold under their marks without overwriting any entry (a dispatcher of an
// earlier version, which writes no start record, may have had a POST in
// flight at the first start that landed after its listing), and marks the
// epoch complete. Until then every payee is looked up before its POST. It
// runs under the recovery lock (as its own owner, so that a recovery this
// process starts meanwhile keeps its lock), one call at a time per process,
// and gives up quietly (to be tried again by a later batch) when the lock
// is taken, the grace is not over or the epoch changed; after a failure
// (a rail missing here, a listing that failed or lacked our ids) this
// process tries again a minute later at the earliest (doubled after each
// further failure, up to an hour).
func (e *Engine) completeEpoch(ctx context.Context, epoch string) {
	if !e.completing.CompareAndSwap(false, true) {
		return
	}
	defer e.completing.Store(false)
	if e.since() < time.Duration(e.completeAfter.Load()) || e.mayEvict.Load() {
		return
	}
	if wait, err := e.st.firstStartWait(ctx); err != nil || wait > 0 {
		return
	}
	lock, ok, err := e.takeRecoveryLock(ctx, e.st.owner+"/complete")
	if err != nil || !ok {
		return
	}
	defer lock.release()
	later := func() {
		// A minute, doubled after each failure up to an hour: a rail
		// whose listing keeps lacking our ids is not listed whole every
		// minute.
		n := min(e.completeFails.Add(1)-1, 6)
		e.completeAfter.Store(int64(e.since() + min(time.Hour, time.Minute<<n)))
	}
	if missing, unlisted, err := e.missingRails(ctx); err != nil || len(missing) > 0 || len(unlisted) > 0 {
		later()
		e.log.Warn("dispatch: the epoch cannot be completed by this replica: every single-payout payee is still looked up before its POST",
			"missing_rails", missing, "retired_rails_still_paid", unlisted, "err", err)
		return
	}
	// Redis's count of evicted keys before the listing: the epoch is
	// completed only if no key went since (completeScript).
	base, err := evictedScript.Run(ctx, e.st.rdb, []string{e.st.epochKey()}).StringSlice()
	if err != nil || len(base) != 2 || base[1] != "1" {
		later()
		e.log.Warn("dispatch: the epoch cannot be completed while Redis may evict keys: every single-payout payee is still looked up before its POST",
			"err", err)
		return
	}
	start := time.Now()
	e.log.Info("dispatch: listing the single-payout rails again to complete a first start's epoch", "epoch", epoch)
	w := &indexWriter{st: e.st, epoch: epoch, live: true}
	// Only what was posted before the grace ended is needed: every later
	// POST follows its entry in this epoch's index. The listing stops at
	// now plus RecoveryGrace, a margin for a rail's clock running ahead of
	// ours (its created_at is its clock's), so that a relisting under a
	// high rate of new payouts does not chase their tail.
	to := time.Now().Add(e.cfg.RecoveryGrace)
	payouts, indexed, unindexed, err := e.listSingles(ctx, w, to, nil)
	if err == nil {
		err = w.flush(ctx)
	}
	if err == nil && unindexed > 0 {
		err = fmt.Errorf("%d payouts listed without our id (payouts_dispatcher_rebuild_unindexed_total): the index cannot prove a payee new", unindexed)
	}
	if err != nil {
		later()
		e.log.Warn("dispatch: completing the epoch failed; a later batch tries again", "epoch", epoch, "err", err)
		return
	}
	select {
	case <-lock.lost:
		return
	default:
	}
	n, err := completeScript.Run(ctx, e.st.rdb, []string{e.st.epochKey(), e.st.graceKey()}, epoch, base[0]).Int()
	if err != nil || n != 1 {
		e.log.Warn("dispatch: completing the epoch refused; a later batch tries again", "epoch", epoch, "err", err)
		return
	}
	e.log.Info("dispatch: epoch complete: payees indexed here for the first time are posted without a lookup",
		"epoch", epoch, "payouts_listed", payouts, "requests_indexed", indexed, "took", time.Since(start).Round(time.Millisecond))
}

// rebuildIndex lists every payout created in the dedupe window, on every
// rail this dispatcher pays through, and indexes each requestId a rail
// holds, for the recovery of epoch. It returns how many payouts (Wompi's
// batches, the single-payout rails' payouts) it listed and how many
// requests it indexed.
//
// The single-payout rails come first. Their payouts name our requestId but
// not our batch, so each is indexed under its rail's mark (listedMark),
// unless the index still names a batch (a partial loss: that batch is the
// better owner). A batch of another rail takes a mark for a duplicate, and
// a batch of the same rail takes it over and its lookup adopts the payout
// (the batch that paid it, redelivered, or a copy that comes first:
// neither POSTs). Without them, a requestId paid on one of these rails and
// sent again on another after a Redis loss was paid twice.
//
// Wompi comes last and overwrites: each transaction reference (a requestId
// Wompi has accepted) is indexed as owned by the payout's reference (our
// batch id), and what Wompi holds beats any claim made since. The window is
// the same as the index's TTL, so a Redis loss never narrows the span in
// which a requestId is single-use. It needs nothing but the published
// listing fields (id, reference; the transactions' reference; a single
// payout's our id). Every write checks that epoch is still the one
// rebuilding: a recovery that lost its lock writes nothing more. The
// single-payout rails' payouts are added to spent (when not nil).
func (e *Engine) rebuildIndex(ctx context.Context, epoch string, spent *listedSpend) (payouts, indexed, unindexed int, err error) {
	w := &indexWriter{st: e.st, epoch: epoch}
	payouts, indexed, unindexed, err = e.listSingles(ctx, w, time.Time{}, spent)
	if err != nil {
		return 0, 0, 0, err
	}
	since := e.cfg.Now().Add(-e.cfg.DedupeWindow)
	from := payout.DayIn(since, rail.Location(rail.Wompi)).StartIn(rail.Location(rail.Wompi))
	// Every batch Wompi holds is listed, not only those created in the
	// window: a scheduled batch's entries live a window past its
	// dispersion (entryTTL), which may be further ahead than the window
	// (ingest takes any later day). One created before the window and paid
	// within it, or still waiting for its day, keeps its requestIds used.
	for p, err := range e.batchRail.ListBatches(ctx, time.Time{}) {
		if err != nil {
			return 0, 0, 0, fmt.Errorf("dispatch: rebuild: list payouts: %w", err)
		}
		if p.CreatedAt.Year() >= 2000 && p.CreatedAt.Before(from) && (p.DispersionAt.IsZero() || p.DispersionAt.Before(since)) {
			continue // created and paid before the window
		}
		payouts++
		spent.addBatch(p)
		// A scheduled batch's entries live the window past its
		// dispersion, as its attempts wrote them (entryTTL).
		var dispersion *time.Time
		if !p.DispersionAt.IsZero() {
			dispersion = &p.DispersionAt
		}
		w.ttlMs = livingTTL(e.cfg.DedupeWindow, dispersion, e.cfg.Now()).Milliseconds()
		for tx, err := range e.batchRail.Items(ctx, p.ProviderID) {
			if err != nil {
				return 0, 0, 0, fmt.Errorf("dispatch: rebuild: list transactions of %s: %w", p.ProviderID, err)
			}
			if tx.ID == "" {
				continue
			}
			if err := w.set(ctx, tx.ID, p.Reference, false); err != nil {
				return 0, 0, 0, err
			}
			indexed++
		}
	}
	if err := w.flush(ctx); err != nil {
		return 0, 0, 0, err
	}
	return payouts, indexed, unindexed, nil
}

// indexWriter writes the rebuilt index a thousand entries per round trip
// (rebuildScript, or relistScript when live), all of one kind (nx: keep an
// entry the index holds).
type indexWriter struct {
	st    *store
	epoch string
	live  bool // the epoch is ready: completeEpoch's marks
	nx    bool
	// ttlMs is how long the entries set from now live (0: the dedupe
	// window); a change flushes those set before it.
	ttlMs   int64
	flushed int64 // the ttlMs of the entries pending
	keys    []string
	values  []any
	echoes  []any // lower-case form, form listed: written before the keys
}

// echo keeps the form an id was listed in under its lower-case form
// (echoesKey), for the suspect mark set next.
func (w *indexWriter) echo(folded, listed string) { w.echoes = append(w.echoes, folded, listed) }

// echoedOn is the field of echoesKey that says rail n listed an id whose
// lower-case form is folded in another case ('@' is in no requestId, so
// it is no lower-case form's field).
func echoedOn(folded string, n rail.Name) string { return folded + "@" + string(n) }

func (w *indexWriter) set(ctx context.Context, requestID, value string, nx bool) error {
	if nx != w.nx || w.ttlMs != w.flushed {
		if err := w.flush(ctx); err != nil {
			return err
		}
		w.nx, w.flushed = nx, w.ttlMs
	}
	w.keys = append(w.keys, w.st.reqKey(requestID))
	w.values = append(w.values, value)
	if len(w.keys) >= 1000 {
		return w.flush(ctx)
	}
	return nil
}

func (w *indexWriter) flush(ctx context.Context) error {
	if len(w.echoes) > 0 {
		// First kept wins: several forms of one id are looked up as one.
		pipe := w.st.rdb.Pipeline()
		for i := 0; i+1 < len(w.echoes); i += 2 {
			pipe.HSetNX(ctx, w.st.echoesKey(), w.echoes[i].(string), w.echoes[i+1])
		}
		pipe.PExpire(ctx, w.st.echoesKey(), time.Duration(w.st.reqTTLms)*time.Millisecond)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("dispatch: rebuild: write the listed forms: %w", err)
		}
		w.echoes = w.echoes[:0]
	}
	if len(w.keys) == 0 {
		return nil
	}
	nx := ""
	if w.nx {
		nx = "nx"
	}
	script := rebuildScript
	if w.live {
		script = relistScript
	}
	ttl := w.st.reqTTLms
	if w.flushed > ttl {
		ttl = w.flushed
	}
	ok, err := script.Run(ctx, w.st.rdb, append([]string{w.st.epochKey()}, w.keys...),
		append([]any{w.epoch, ttl, nx}, w.values...)...).Int()
	if err != nil {
		return fmt.Errorf("dispatch: rebuild: write index: %w", err)
	}
	if ok != 1 {
		return errors.New("dispatch: rebuild: the epoch changed during the rebuild")
	}
	w.keys, w.values = w.keys[:0], w.values[:0]
	return nil
}

// listedSpend sums, per single-payout rail and business day, the amounts a
// recovery's listing shows the rail paid on the day the recovery began or
// later (each day in the rail's zone). Those days' budgets may have held
// reservations the loss took, and these rails publish no figure of their
// own; the days before are over, so no reservation counts on them again.
type listedSpend struct {
	at   time.Time // the recovery's start, by our clock
	days map[rail.Name]map[payout.Day]int64
	// wompi: Wompi's batches of the day and after, to book (addBatch).
	wompi []ratelimit.Reservation
}

func newListedSpend(at time.Time) *listedSpend {
	return &listedSpend{at: at, days: map[rail.Name]map[payout.Day]int64{}}
}

// add counts p, listed by rail n. A payout listed without a creation
// time, or with one no payout can have (before 2000, or more than two
// days after s.at: a rail's numeric time read in the wrong unit), counts
// on s.at's day: never too little, and never a day that is not a date.
func (s *listedSpend) add(n rail.Name, p rail.Payout) {
	if s == nil || p.AmountInCents <= 0 {
		return
	}
	loc := rail.Location(n)
	first := payout.DayIn(s.at, loc)
	day := first
	if at := p.CreatedAt; at.Year() >= 2000 && !at.After(s.at.Add(48*time.Hour)) {
		if day = payout.DayIn(at, loc); day < first {
			return
		}
	}
	if s.days[n] == nil {
		s.days[n] = map[payout.Day]int64{}
	}
	s.days[n][day] = addCapped(s.days[n][day], p.AmountInCents)
}

// addBatch keeps Wompi's batch p to book (bookWompi): its amount day is
// its dispersion day when scheduled, else the day it was created, and its
// slot day the day it was created (Bogota). A batch whose days are over,
// or whose listing names no account a budget can name, counts against
// every account of the day instead (noteListed). Days before the
// recovery's are over.
func (s *listedSpend) addBatch(p rail.Batch) {
	if s == nil || p.AmountInCents <= 0 {
		return
	}
	loc := rail.Location(rail.Wompi)
	today := payout.DayIn(s.at, loc)
	slot, day := today, today
	if p.CreatedAt.Year() >= 2000 {
		slot = payout.DayIn(p.CreatedAt, loc)
	}
	day = slot
	if !p.DispersionAt.IsZero() && p.DispersionAt.Year() >= 2000 {
		day = payout.DayIn(p.DispersionAt, loc)
	}
	if day < today {
		return
	}
	ref, acct := p.Reference, p.OriginAccountID
	if !payout.ValidReference(ref) || acct == "" || len(acct) > 200 || strings.ContainsAny(acct, " \t\r\n") {
		if s.days[rail.Wompi] == nil {
			s.days[rail.Wompi] = map[payout.Day]int64{}
		}
		s.days[rail.Wompi][day] = addCapped(s.days[rail.Wompi][day], p.AmountInCents)
		return
	}
	s.wompi = append(s.wompi, ratelimit.Reservation{BatchID: ref, Rail: rail.Wompi, AccountID: acct,
		Day: day.String(), SlotDay: slot.String(), AmountInCents: p.AmountInCents})
}

// bookWompi books each of Wompi's batches of the day and after (addBatch)
// whose reservation our budget no longer holds (ratelimit's BookListed). A
// loss that kept the day's budget but took its last reservations (a restart
// from an older snapshot, a failover to a replica that missed them) leaves
// the day seeded, so GET /limits is not asked again, and the batches
// posted in the lost moments would not count: an account could be paid
// past its daily limit.
func (e *Engine) bookWompi(ctx context.Context, spent *listedSpend) error {
	booked := 0
	for _, r := range spent.wompi {
		ok, err := e.budget.BookListed(ctx, r)
		if err != nil {
			return fmt.Errorf("dispatch: recovery: book Wompi's batch %s: %w", r.BatchID, err)
		}
		if ok {
			booked++
		}
	}
	if booked > 0 {
		e.log.Warn("dispatch: recovery: Wompi lists batches of the day our budget no longer held: counted again",
			"batches", booked, "listed", len(spent.wompi))
	}
	return nil
}

// noteListed writes spent into the rails' budgets (ratelimit's NoteListed):
// after a Redis loss, every account starts the day at least at what its
// rail listed as paid, since the rail names none of our accounts. Without
// it a single-payout account could be paid its daily limit twice on the
// day of a loss.
func (e *Engine) noteListed(ctx context.Context, spent *listedSpend) error {
	for n := range e.cfg.Singles {
		// The recovery's day is listed, even when at 0: its first seed
		// need not list it again (listDay).
		if spent.days[n] == nil {
			spent.days[n] = map[payout.Day]int64{}
		}
		first := payout.DayIn(spent.at, rail.Location(n))
		spent.days[n][first] += 0
	}
	for _, n := range slices.Sorted(maps.Keys(spent.days)) {
		for _, day := range slices.Sorted(maps.Keys(spent.days[n])) {
			cents := spent.days[n][day]
			if _, err := e.budget.NoteListed(ctx, n, day.String(), cents); err != nil {
				return fmt.Errorf("dispatch: recovery: budget of %s on %s: %w", n, day, err)
			}
			if cents > 0 {
				e.log.Warn("dispatch: recovery: the rail listed payouts of the day our lost budget held: every account of the rail counts them on that day",
					"rail", n, "day", day.String(), "listed_cents", cents)
			}
		}
	}
	return nil
}
