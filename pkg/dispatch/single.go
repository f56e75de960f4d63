package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/track"
)

// A single-payout rail (SmartFastPay, WEpayout) takes one payee per POST
// and documents no idempotency: a second POST with the same id pays twice.
// So the rules of runSingle are:
//
//   - every POST is preceded by a lookup by our own id (the requestId, the
//     provider's transaction id or invoice): found, the payout is adopted;
//     only a lookup that proves it absent lets a POST go out. The one
//     exception is a payee the duplicate index itself proves no dispatcher
//     has posted (newPayeeProof): its first POST goes out without a lookup.
//     Every retry, every payee of a batch that may have sent a POST, and
//     every payee after a Redis loss until the rails were listed again,
//     is looked up first;
//   - a POST whose outcome is unknown (a timeout, a 5xx, a lost answer) is
//     followed by a wait of RecoveryGrace (the longest a POST started
//     before can still land) before the next lookup;
//   - a batch that an earlier attempt was already posting (a crash, a lease
//     another replica lost) waits RecoveryGrace plus a lease before its
//     first lookup, for the same reason;
//   - a refusal (validation) rejects that payee only; a deferral (balance,
//     limit) defers that payee only, in a smaller copy of the batch on the
//     deferred topic; credentials that stopped working are retried at the
//     longest backoff, loudly, never turned into a rejection (a create so
//     refused may still land: its lookup waits RecoveryGrace too).
//
// Redis work per batch is a constant number of round trips: the claim, the
// duplicate index, the reservation, one state move, one pipelined hand-off
// of every payee, the status gate (two), the final state move; the rate
// limit costs one per POST or lookup, as it does for Wompi's POST.

// singleOutcome is what became of one payee.
type singleOutcome struct {
	paid     *rail.Payout
	found    bool        // paid is the provider's, found by a lookup (not created by this job)
	rejected *rail.Error // refused: REJECTED with its code
	deferred *rail.Error // refused for now: deferred
	// unavailable: the rail kept failing past RailPatience; deferred
	// RAIL_UNAVAILABLE (a POST of it may have landed: the next attempt
	// looks it up first).
	unavailable error
}

// errListedWithoutID: a lookup listed a payout under our id without the
// provider's own id (payOne, findOnce): it proves the payee or batch was
// posted, yet cannot be adopted (its hand-off and SUBMITTED would name no
// payout, and nothing would follow it). A failed lookup, asked again.
var errListedWithoutID = errors.New("dispatch: the provider lists a payout under our id without its own id")

// errPatience ends a payee's retries once the rail has failed for longer
// than RailPatience.
var errPatience = errors.New("dispatch: the rail kept failing past its patience")

// runSingle pays the batch of a single-payout rail through cl.
func (j *job) runSingle(c claim, cl rail.SinglePayouts) error {
	e, b := j.e, j.b
	// Single-payout rails take the payee's bank code as sent: no bankId.
	j.bankIDs = make([]string, len(b.Transactions))
	for i := range j.bankIDs {
		j.bankIDs[i] = "-"
	}
	if _, err := j.dedupe(false); err != nil {
		return err
	}
	j.firstPostAt = c.firstPostAt
	maybeSent := c.state == statePosting || c.state == statePosted || !c.firstPostAt.IsZero()
	if c.code == "fresh" && (j.indexedBefore || e.mayEvict.Load()) {
		// The record is gone (evicted, run out) but the index says an
		// earlier attempt ran: its POSTs may be in flight. On a Redis
		// that may evict, the payees' entries may have gone with the
		// record (an eviction takes any key): a fresh claim proves no
		// earlier attempt absent.
		maybeSent = true
	}
	if len(j.keep) == 0 {
		return j.nothingToPay()
	}
	// A first start skipped the recovery grace, which Wompi's listing
	// proves safe for Wompi only: a dispatcher of an earlier version may
	// have a POST to this rail in flight (starts.go). Waited before the
	// batch is marked posting, so that an interrupted wait leaves nothing
	// that looks sent. A complete epoch's rails were listed after a grace
	// (a recovery's, or a first start's by completeEpoch), so it has none
	// left to wait.
	if !j.complete {
		if wait, err := e.st.firstStartWait(j.soft); err != nil {
			return err
		} else if wait > 0 {
			j.log.Info("dispatch: first start: waiting out the recovery grace before looking payees up",
				"rail", cl.Rail(), "wait", wait.Round(time.Millisecond))
			if err := sleep(j.soft, wait); err != nil {
				return err
			}
		}
		// A first start's epoch, or one a previous version wrote: list the
		// rails again, in the background, so later batches may use the
		// proof.
		epoch := j.epoch
		e.reads.Go(func() { e.completeEpoch(e.hard, epoch) })
	}
	if j.refusalMayBeLost(c) {
		// Redis lost our state, and this batch was written before: an
		// attempt of the lost state may have had a payee refused, its
		// refusal recorded only in the lost record (c.refused), its
		// REJECTED on the status topic. The rail created nothing for it:
		// no listing nor lookup tells. One read of the topic for every
		// payee that may be posted; a payee found there and looked up
		// absent is ended REJECTED again (payOne). A failed read fails
		// the attempt before any reservation or POST: retried.
		ids := make([]string, 0, len(j.keep))
		for _, i := range j.keep {
			if _, ok := c.refused[b.Transactions[i].RequestID]; !ok {
				ids = append(ids, b.Transactions[i].RequestID)
			}
		}
		if len(ids) > 0 {
			found, err := j.payeesRejectedOnTopic(ids)
			if err != nil {
				return err
			}
			j.refusedOnTopic = found
			if len(j.refusedOnTopic) > 0 {
				j.log.Warn("dispatch: payees of the batch were rejected before a Redis data loss (their REJECTED is on the status topic): each one its lookup proves absent is ended the same way again, never posted",
					"rail", cl.Rail(), "payees", len(j.refusedOnTopic))
			}
		}
	}
	amount := j.keptAmount()
	j.res = newReservation(b, j.acct, amount, e.now())
	// A batch an earlier attempt may have started paying (its rest, or
	// the whole batch read again): that attempt's reservation, of the
	// whole batch, still holds on its day, and a new one for what is left
	// must not replace it (it would forget what was paid). On a later day
	// what is left is paid on that day, so it is reserved there.
	g, err := j.reserveSingle(maybeSent)
	j.reserved = err == nil
	if errors.Is(err, errPatience) {
		// The rail's listing of the day, which its budget needs first,
		// kept failing: nothing was posted by this attempt, and the batch
		// waits as for a rail down. One an earlier attempt may have
		// posted keeps its reservation; its DEFERRED go through the
		// status gate (deferBatch), and its copy looks its payees up
		// before any POST.
		j.log.Warn("dispatch: the rail's listing of the day kept failing: the batch waits on the deferred topic", "rail", cl.Rail(), "err", err)
		return j.deferWhole(c, rail.ReasonRailUnavailable, e.now().Add(e.railRetryAfter(b.Attempt)),
			"the rail's listing of the day, which its daily budget needs, kept failing for longer than the dispatcher's patience")
	}
	if err != nil {
		return err
	}
	if !g.Granted {
		reason := payout.ReasonDailyLimit
		if g.Denied == ratelimit.DeniedBatchCount {
			reason = payout.ReasonBatchBudget
		}
		j.overDailyLimit(j.keptAmount(), g)
		return j.deferWhole(c, reason, j.nextDayStart(), "our daily budget is used up ("+string(g.Denied)+")")
	}
	// The proof, for any later attempt, that POSTs may have gone out.
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID,
		[]string{stateClaimed, stateDeferred, statePosting}, statePosting,
		"?firstPostAt", strconv.FormatInt(e.now().UnixMilli(), 10)); err != nil {
		return err
	}
	if j.firstPostAt.IsZero() {
		j.firstPostAt = e.now() // payees may be paid from here on (poison)
	}
	if maybeSent {
		// The earlier attempt's lease ran out at most LeaseTTL after it
		// was last confirmed, and its last POST may have started up to
		// leaseFresh's limit after that confirmation and land RecoveryGrace
		// later: recoveryWait covers that from the confirmation (a helper
		// review found RecoveryGrace + LeaseTTL short when RecoveryGrace is
		// set far above HTTPTimeout).
		// The wait is the longest any live dispatcher's timings need: the
		// earlier attempt may have been a replica's with longer ones.
		_, wait, err := e.peerWaits(j.soft)
		if err != nil {
			return err
		}
		j.log.Warn("dispatch: an earlier attempt may have posted some payees: waiting for its calls to land before looking them up",
			"rail", cl.Rail(), "wait", wait)
		if err := sleep(j.soft, wait); err != nil {
			return err
		}
	}

	// Payees are looked up a group at a time: on a rail that looks many ids
	// up in one call (rail.ManyFinder), one lookup per group, made just
	// before the group's payees are posted (the group is as large as one
	// lookup takes); elsewhere each payee looks itself up. A payee no
	// dispatcher can have posted is not looked up (newPayeeProof).
	// A payee its rail refused in an earlier attempt of this batch (read
	// again: its offset was not committed) is neither looked up nor
	// posted again: its REJECTED, perhaps on the topic already, is final.
	// It is emitted again, under the same eventId.
	var refusedBefore []int
	if len(c.refused) > 0 {
		kept := make([]int, 0, len(j.keep))
		for _, i := range j.keep {
			if _, ok := c.refused[b.Transactions[i].RequestID]; ok {
				refusedBefore = append(refusedBefore, i)
			} else {
				kept = append(kept, i)
			}
		}
		j.keep = kept
	}
	unposted := j.provenUnposted(maybeSent)
	ask := func(i int) bool { return unposted == nil || !unposted[i] }
	mf, _ := cl.(rail.ManyFinder)
	group := 1
	if mf != nil {
		group = max(1, mf.MaxFindMany())
	}
	// Every call the batch will make (a POST per payee, a lookup per group
	// that has a payee to look up) is reserved from the rail's rate limit
	// in one round trip; a retry reserves one more.
	calls := len(j.keep)
	for lo := 0; lo < len(j.keep); lo += group {
		if slices.ContainsFunc(j.keep[lo:min(lo+group, len(j.keep))], ask) {
			calls++
		}
	}
	if calls > 0 { // none when every payee left was refused before
		if j.pacer, err = e.bulk[cl.Rail()].Reserve(j.soft, calls); err != nil {
			return err
		}
	}
	j.railDeadline = time.Now().Add(e.cfg.RailPatience)
	j.sday = &singleDay{paid: make([]bool, len(b.Transactions))}
	j.unlisted = make([]bool, len(b.Transactions))
	outs := make([]singleOutcome, len(b.Transactions))
	errs := make([]error, len(b.Transactions))
	var crashOnce sync.Once
	var crash error
	afterPost := func() error {
		if e.afterPost == nil {
			return nil
		}
		crashOnce.Do(func() {
			if herr := e.afterPost(b.BatchID); herr != nil {
				crash = fmt.Errorf("%w: %w", errCrashed, herr)
				e.crash()
			}
		})
		return crash
	}
	// SingleConcurrency payers live as long as the batch and take the
	// payees one at a time: a goroutine per payee grew a fresh stack to the
	// HTTP client's depth for every payee (3% of the workers' CPU in the
	// SmartFastPay load run).
	type payee struct {
		i   int
		pre *[]rail.Payout // the group's lookup; nil: none made (unposted says why)
	}
	work := make(chan payee)
	var wg sync.WaitGroup
	for range min(e.cfg.SingleConcurrency, len(j.keep)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				outs[p.i], errs[p.i] = j.payOne(cl, p.i, p.pre, !ask(p.i), maybeSent, afterPost)
			}
		}()
	}
	var lookupErr error
	for lo := 0; lo < len(j.keep) && lookupErr == nil; lo += group {
		part := j.keep[lo:min(lo+group, len(j.keep))]
		var found map[string][]rail.Payout // nil: each payee of part looks itself up
		var ids []string
		if mf != nil {
			for _, i := range part {
				if _, echoed := j.echoes[i]; ask(i) && !echoed {
					ids = append(ids, b.Transactions[i].RequestID)
				}
			}
		}
		if len(ids) > 0 {
			found, err = j.findMany(cl.Rail(), mf, ids)
			if errors.Is(err, errUnprovable) {
				// One listed item proves nothing for the group (no id of
				// ours, or one in another case): each payee of part
				// looks itself up alone, so that only the payees that
				// item may be stay unproven (their own lookups fail the
				// same way, and they wait), not the whole group.
				j.log.Warn("dispatch: a group lookup listed a payout it cannot compare; each payee of the group is looked up alone",
					"rail", cl.Rail(), "payees", len(ids), "err", err)
				e.m.retries.WithLabelValues("lookup_alone").Inc()
				found, err = nil, nil
			}
			if errors.Is(err, errPatience) {
				for _, i := range part {
					outs[i] = singleOutcome{unavailable: err}
				}
				continue
			}
			if err != nil {
				lookupErr = err
				break
			}
		}
		for _, i := range part {
			p := payee{i: i}
			if _, echoed := j.echoes[i]; found != nil && ask(i) && !echoed {
				ps := found[b.Transactions[i].RequestID]
				p.pre = &ps
			}
			work <- p
		}
	}
	close(work)
	wg.Wait()
	if err := errors.Join(append(errs, lookupErr)...); err != nil {
		// The payees already paid are found by the next attempt's lookups.
		return err
	}
	for _, i := range refusedBefore {
		r := c.refused[b.Transactions[i].RequestID]
		outs[i] = singleOutcome{rejected: &rail.Error{Rail: cl.Rail(), Op: "create", Class: rail.Rejected, Code: r.code, Message: r.message}}
	}
	j.keep = append(j.keep, refusedBefore...)
	return j.finishSingle(cl.Rail(), outs, c.unproved())
}

// deferWhole defers a single-payout batch before any of its payees was
// looked up or posted by this attempt. An earlier attempt may have settled
// some of them: those it recorded refused are left out (dropRefusedBefore);
// and when the batch was first written before a loss of our state (its
// record, and the status gate's keys, may be gone: the claim proves
// nothing), only the copy is written, without DEFERRED, as deferRail does:
// a payee paid before the loss may be SUBMITTED or later already, and the
// copy's lookups emit what the rail says.
func (j *job) deferWhole(c claim, reason payout.Reason, notBefore time.Time, why string) error {
	if j.dropRefusedBefore(c) {
		return j.nothingToPay()
	}
	j.copyOnly = j.copyOnly || j.readBeforeTheLoss()
	return j.deferBatch(reason, notBefore, false, why)
}

// dropRefusedBefore moves the kept payees an earlier attempt of the batch
// recorded refused (c.refused) out of keep, into the drops with their
// REJECTED under its first eventId, before the batch is deferred whole: a
// refused payee's REJECTED, perhaps on the topic already, is final, and no
// DEFERRED may follow it (the dispatcher's REJECTED goes through no status
// gate), nor may a copy carry it. It reports whether no payee is left to
// defer.
func (j *job) dropRefusedBefore(c claim) (none bool) {
	if len(c.refused) == 0 {
		return false
	}
	b := j.b
	kept := make([]int, 0, len(j.keep))
	for _, i := range j.keep {
		rid := b.Transactions[i].RequestID
		r, ok := c.refused[rid]
		if !ok {
			kept = append(kept, i)
			continue
		}
		j.drops = append(j.drops, drop{idx: i, reason: payout.Reason(r.code), message: r.message,
			eventID: payout.EventID("status", rid, string(payout.StatusRejected), b.BatchID)})
		// Its REJECTED, produced with the drops, goes through no gate
		// (finishSingle says why that matters).
		j.ungated = true
	}
	j.keep = kept
	return len(kept) == 0
}

// reserveSingle is reserve for a rail whose provider publishes no figures of
// what was already spent today: an account's amount is seeded from what
// the rail listed on the day before any account of it was seeded there
// (listDay), and from our own reservations. rest: j.res is the rest of a batch an earlier attempt
// started paying; a reservation the batch already holds on the amount day
// (the whole batch's, or an earlier rest's, never smaller) covers it and
// is kept, not replaced.
func (j *job) reserveSingle(rest bool) (ratelimit.Grant, error) {
	return j.reserveSeeding(rest, func(ns *ratelimit.NotSeededError) error {
		if ns.AmountDay != "" {
			if err := j.e.listDay(j.soft, ns.Rail, payout.Day(ns.AmountDay)); err != nil {
				return err
			}
			if _, err := j.e.budget.SeedAmount(j.hard, ns.Rail, ns.AmountDay, ns.AccountID, 0); err != nil {
				return err
			}
		}
		if ns.SlotDay != "" {
			if _, err := j.e.budget.SeedBatches(j.hard, ns.Rail, ns.SlotDay, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

// dayLister is listDay's state for one rail.
type dayLister struct {
	mu       sync.Mutex // one listing at a time
	failedAt time.Time  // when the last listing ran out of patience
}

// listDay notes, once per rail and day, what the rail's listing shows
// created on that day (its business day) before the day's first account is
// seeded (ratelimit's NoteListed): every account of the rail then starts
// the day at that figure. On a normal day it is listed just after midnight
// and holds next to nothing. When the day's budget was lost (a Redis
// loss, or on a Redis Cluster the budgets' master alone, which no epoch
// notices) it holds what was paid before the loss, which these rails
// publish nowhere else: without it an account could be paid its daily
// limit twice. A recovery notes its own day itself, after its grace.
//
// One listing at a time per rail and process; the others wait for it and
// read its figure. A listing that keeps failing ends with errPatience
// after RailPatience, and so do at once the batches that waited for it:
// the rail is down, and its batches wait on the deferred topic rather
// than hold their partitions.
func (e *Engine) listDay(ctx context.Context, n rail.Name, day payout.Day) error {
	if _, ok, err := e.budget.Listed(ctx, n, day.String()); err != nil || ok {
		return err
	}
	l, ok := e.lists[n]
	if !ok {
		return fmt.Errorf("dispatch: no client of rail %s to list the payouts of %s for its budget", n, day)
	}
	arrived := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok, err := e.budget.Listed(ctx, n, day.String()); err != nil || ok {
		return err
	}
	if l.failedAt.After(arrived) {
		return fmt.Errorf("%w: the rail's listing of %s, needed for its budget, ran out of patience while this batch waited for it", errPatience, day)
	}
	start := time.Now()
	loc := rail.Location(n)
	var cents int64
	var payouts int
	for attempt := 0; ; attempt++ {
		var err error
		if cents, payouts, err = e.spentOn(ctx, n, day); err == nil {
			break
		}
		if ctx.Err() != nil {
			return err
		}
		e.m.retries.WithLabelValues("list_day").Inc()
		d := e.backoff(attempt)
		if time.Since(start)+d > e.cfg.RailPatience {
			l.failedAt = time.Now()
			return fmt.Errorf("%w: %w", errPatience, err)
		}
		e.log.Warn("dispatch: listing the rail's payouts of the day for its budget failed; asking again", "rail", n, "day", day.String(), "err", err)
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	l.failedAt = time.Time{}
	if _, err := e.budget.NoteListed(ctx, n, day.String(), cents); err != nil {
		return err
	}
	e.log.Info("dispatch: the rail's payouts of the day listed before its first account's budget: every account of the rail counts them",
		"rail", n, "day", day.String(), "zone", loc.String(), "payouts", payouts, "listed_cents", cents, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// spentOn sums what rail n lists created on day (its business day): one
// walk of its listing, from the day's start to the next day's.
func (e *Engine) spentOn(ctx context.Context, n rail.Name, day payout.Day) (cents int64, payouts int, err error) {
	loc := rail.Location(n)
	spent := newListedSpend(day.StartIn(loc))
	begin := time.Now()
	for p, err := range e.cfg.Singles[n].List(ctx, rail.ListFilter{From: day.StartIn(loc), To: day.Next().StartIn(loc)}) {
		if err != nil {
			e.m.observeRail(n, "list", begin, err)
			return 0, 0, fmt.Errorf("dispatch: list %s payouts of %s for its budget: %w", n, day, err)
		}
		payouts++
		spent.add(n, p)
	}
	e.m.observeRail(n, "list", begin, nil)
	return spent.days[n][day], payouts, nil
}

// singleDay is what the POSTs of a single-payout batch have counted on
// their rail's day (followSingleDay).
type singleDay struct {
	mu sync.Mutex
	// paid, per position: a POST of this attempt paid the payee (counted
	// on the day it went out). A payee posted on an earlier day and not
	// paid (refused for now, its rail down, its outcome unknown) may be
	// paid on the new day, by this attempt or by its copy, whose
	// reservation there is kept as covering it (reserveSingle's rest).
	paid   []bool
	denied *rail.Error // a later day had no room: the payees not posted wait
}

// followSingleDay keeps a single-payout batch's reservation on the day its
// POSTs go out, as followDay does for a Wompi batch: the rail pays each
// payee on the day of its POST. Once a POST would go out on a later day
// than j.res's, the payees this attempt has not paid yet (and i) are
// reserved on that day, once for the batch (one posted on the earlier day
// and not paid may be paid on this one, or by its copy); the earlier day keeps its reservation (its
// payees were paid there, and the day is past). A payee found paid by a
// lookup is counted again, never too few. When the new day has no room,
// i and every later payee wait (a refusal for now, re is not nil): their
// copy is reserved on its own day.
func (j *job) followSingleDay(i int) (re *rail.Error, err error) {
	s := j.sday
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denied != nil {
		return s.denied, nil
	}
	day, slot := budgetDays(j.b, j.e.now())
	lost := false
	if slot == j.res.SlotDay && (j.e.budgetApart || j.e.mayEvict.Load()) {
		// The same day: the batch's reservation must still be there. The
		// day's budget may have been lost since it was made while the
		// epoch was not (on a Redis Cluster the budgets' master alone; an
		// evicting Redis): the next batch of the account then seeds the
		// day from the rail's listing, which holds only the payees posted
		// so far, and the rest of this batch, counted nowhere, would be
		// paid past the limit. (One Redis round trip per POST, only there:
		// Engine.budgetApart.)
		held, err := j.e.budget.Holds(j.hard, j.res)
		if err != nil {
			return nil, err
		}
		lost = !held
	}
	if slot != j.res.SlotDay || lost {
		var amount int64
		for _, k := range j.keep {
			if !s.paid[k] {
				amount = addCapped(amount, j.b.Transactions[k].AmountInCents)
			}
		}
		prev := j.res
		j.res.Day, j.res.SlotDay, j.res.AmountInCents = day, slot, amount
		g, err := j.reserveSingle(true)
		if err != nil {
			j.res = prev
			return nil, err
		}
		if !g.Granted {
			j.res = prev
			s.denied = &rail.Error{Rail: railName(j.b), Op: "create", Class: rail.Deferred, Reason: payout.ReasonDailyLimit,
				Message: "our daily budget is used up (" + string(g.Denied) + ") on the day the POST goes out"}
			return s.denied, nil
		}
		if lost {
			j.log.Warn("dispatch: the batch's reservation is gone from the day's budget (lost with Redis): the payees left are reserved again",
				"amount_day", day, "amount", amount)
		} else {
			j.log.Info("dispatch: single payouts go out on a later day than reserved: the payees left are reserved there",
				"slot_day", slot, "amount_day", day, "amount", amount)
		}
	}
	return nil, nil
}

// paidOn records that a POST of this attempt paid payee i
// (followSingleDay).
func (s *singleDay) paidOn(i int) {
	s.mu.Lock()
	s.paid[i] = true
	s.mu.Unlock()
}

// payOne pays payee i exactly once: lookup, and only when the provider
// proves it holds nothing for our id, a POST; or, when unposted (the
// duplicate index proves no dispatcher has posted it: newPayeeProof), a
// first POST without a lookup. Any later try looks it up first. sent: an
// earlier attempt of the batch may have posted the payee (maybeSent).
// crashHook runs after the first answered POST (tests).
func (j *job) payOne(cl rail.SinglePayouts, i int, pre *[]rail.Payout, unposted, sent bool, crashHook func() error) (singleOutcome, error) {
	e := j.e
	t := &j.b.Transactions[i]
	name := cl.Rail()
	req := singleRequest(name, t)
	// repeat: an earlier POST of the payee, by this job with an unknown
	// outcome or by an earlier attempt of the batch (sent: its answer
	// recorded nowhere), may be paying: a refusal of a later POST may
	// answer that one, and is taken (refused) only once a lookup finds
	// nothing.
	repeat, refused := sent, (*rail.Error)(nil)
	// echo: our id in the form a create's answer named it (rail.Error's
	// Echo), looked up too (findPayee).
	echo := ""
	// posted: this job sent a POST of the payee. A payout found before any
	// (on the first try, or a later one after a lookup asked again) was
	// not created by this job (singleOutcome.found).
	posted := false
	for attempt := 0; ; attempt++ {
		var found []rail.Payout
		var err error
		if attempt == 0 && unposted {
			e.m.lookupsSkipped.WithLabelValues(string(name)).Inc()
		} else if attempt == 0 && pre != nil {
			found = *pre // the group's lookup, just made
		} else {
			found, err = j.findPayee(cl, i, echo)
		}
		if errors.Is(err, errPatience) {
			return singleOutcome{unavailable: err}, nil
		}
		if err != nil {
			return singleOutcome{}, err
		}
		if ided := slices.DeleteFunc(slices.Clone(found), func(p rail.Payout) bool { return p.ProviderID == "" }); len(ided) < len(found) {
			if len(ided) == 0 {
				// Listed under our id without the provider's own id: the
				// payee was posted, yet a payout adopted so would be
				// handed off as "<rail>:" and its SUBMITTED name none,
				// and nothing would follow it. Neither adopted nor
				// posted: looked up again, as after a failed lookup.
				e.m.retries.WithLabelValues("lookup").Inc()
				j.log.Warn("dispatch: the provider lists a payout under our id without its own id; looking it up again",
					"rail", name, "request_id", t.RequestID, "try", attempt)
				if werr := j.railWait(e.backoff(attempt)); werr != nil {
					return patienceOr(werr, errListedWithoutID)
				}
				continue
			}
			found = ided
		}
		if len(found) > 0 {
			e.m.reconciled.WithLabelValues("true").Inc()
			if len(found) > 1 {
				// Someone posted our id twice: not us within the dedupe
				// window (every POST follows a lookup that found nothing, or
				// newPayeeProof), but it must be seen.
				e.m.providerDupes.WithLabelValues(string(name)).Inc()
				j.log.Error("dispatch: the provider holds more than one payout for one requestId; the earliest that may still pay is adopted",
					"rail", name, "request_id", t.RequestID, "payouts", len(found))
			}
			p := adoptable(found)
			if p.AmountInCents != 0 && p.AmountInCents != t.AmountInCents {
				// Our id names it, so it is adopted and never posted
				// again; but the provider pays another amount than the
				// request's, and the request's events will say otherwise.
				e.m.amountMismatch.WithLabelValues(string(name)).Inc()
				j.log.Error("dispatch: the provider holds the payout of our requestId for another amount; adopted, not posted again: check it with the provider",
					"rail", name, "request_id", t.RequestID, "amount_in_cents", t.AmountInCents, "provider_amount_in_cents", p.AmountInCents)
			}
			return singleOutcome{paid: &p, found: !posted}, nil
		}
		if attempt > 0 || !unposted {
			e.m.reconciled.WithLabelValues("false").Inc()
		}
		if refused != nil {
			return singleOutcome{rejected: refused}, nil
		}
		if r, ok := j.refusedOnTopic[t.RequestID]; ok {
			// Refused by an attempt before a Redis loss (its REJECTED on
			// the status topic, its record lost), and proven absent (or
			// never posted: newPayeeProof): REJECTED is final. Ended the
			// same way again, under the same eventId (finishSingle).
			return singleOutcome{rejected: &rail.Error{Rail: name, Op: "create", Class: rail.Rejected, Code: r.code, Message: r.message}}, nil
		}
		if j.listed[t.RequestID] && !j.unlisted[i] {
			// Taken over from a recovery's mark, and looked up absent: not
			// paid before the loss. Its record forgets the mark before
			// the POST, so that a later attempt finding the payout (this
			// POST's) emits its SUBMITTED (finishSingle).
			if _, err := e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID, []string{statePosting}, statePosting,
				listedPrefix+t.RequestID, "0"); err != nil {
				return singleOutcome{}, err
			}
			j.unlisted[i] = true
		}
		if err := j.callToken(name); err != nil {
			return singleOutcome{}, err
		}
		if j.soft.Err() != nil { // the lease is gone: another replica owns the batch now
			return singleOutcome{}, j.soft.Err()
		}
		if e.beforePost != nil {
			e.beforePost(j.b.BatchID)
		}
		if re, err := j.followSingleDay(i); err != nil {
			return singleOutcome{}, err
		} else if re != nil {
			return singleOutcome{deferred: re}, nil
		}
		if err := j.leaseFresh(); err != nil {
			return singleOutcome{}, err
		}
		if e.whileSending != nil {
			e.whileSending(j.b.BatchID)
		}
		start := time.Now()
		ctx, cancel, err := j.postContext()
		if err != nil {
			return singleOutcome{}, err
		}
		posted = true
		p, err := cl.Create(ctx, req)
		cancel()
		e.m.observeRail(name, "create", start, err)
		if herr := crashHook(); herr != nil {
			return singleOutcome{}, herr
		}
		if err == nil {
			j.sday.paidOn(i)
			return singleOutcome{paid: &p}, nil
		}
		var re *rail.Error
		errors.As(err, &re)
		switch rail.ClassOf(err) {
		case rail.Rejected, rail.Permanent:
			if re == nil {
				re = &rail.Error{Rail: name, Op: "create", Class: rail.Permanent, Message: err.Error()}
			}
			if repeat {
				// The lookup before this POST found nothing, yet an
				// earlier POST may be paying (a listing behind its
				// write, a create still being applied), and the rail may
				// refuse the repeat for it in words that name no
				// duplicate. A REJECTED is final and goes through no
				// gate: it waits for a lookup begun once any POST in
				// flight has landed, and a payout found is adopted.
				j.log.Warn("dispatch: a repeat POST of a single payout was refused; looking it up once any POST in flight has landed before taking the refusal",
					"rail", name, "request_id", t.RequestID, "err", err, "wait", e.cfg.RecoveryGrace)
				if err := sleep(j.soft, e.cfg.RecoveryGrace); err != nil {
					return singleOutcome{}, err
				}
				repeat, refused = false, re
				continue
			}
			return singleOutcome{rejected: re}, nil
		case rail.Deferred:
			return singleOutcome{deferred: re}, nil
		case rail.AlreadyExists, rail.OutcomeUnknown:
			repeat = true
			if re != nil && (re.HTTPStatus == http.StatusUnauthorized || re.HTTPStatus == http.StatusForbidden) {
				// A create refused our credentials and its outcome is
				// unknown (SmartFastPay's 401 once a new token came): it
				// is still credentials to fix, counted as blocked.
				e.m.railBlocked.WithLabelValues(string(name), strconv.Itoa(re.HTTPStatus)).Inc()
			}
			if re != nil && re.Echo != "" && echo == "" {
				// The rail named our id in its own form, which its filter
				// may match alone: a lookup by our id would find nothing
				// and each POST after it pay again. That form is looked up
				// too, and the batch's record keeps it for every later
				// attempt (dedupeScript's echo field).
				echo = re.Echo
				if _, err := e.st.transition(j.hard, j.owner, j.epoch, j.b.BatchID, []string{statePosting}, statePosting,
					"?echo:"+t.RequestID, echo); err != nil {
					return singleOutcome{}, err
				}
			}
			// A 409 after a lookup that said absent: the provider holds a
			// create it has not listed yet, or one it is still applying.
			// Neither rail says which, so it is an unknown outcome: no
			// lookup (and so no POST) before any POST in flight has landed.
			e.m.retries.WithLabelValues("post").Inc()
			j.log.Warn("dispatch: single payout's outcome unknown; looking it up once any POST in flight has landed",
				"rail", name, "request_id", t.RequestID, "err", err, "wait", e.cfg.RecoveryGrace)
			if err := sleep(j.soft, e.cfg.RecoveryGrace); err != nil {
				return singleOutcome{}, err
			}
			if time.Now().After(j.railDeadline) {
				return singleOutcome{unavailable: fmt.Errorf("%w: %w", errPatience, err)}, nil
			}
		case rail.Unauthorized:
			code := "401"
			if re != nil && re.HTTPStatus != 0 {
				code = strconv.Itoa(re.HTTPStatus)
			}
			e.m.railBlocked.WithLabelValues(string(name), code).Inc()
			j.log.Error("dispatch: single payout refused for a reason no retry fixes (credentials, permission or base URL); retrying at the longest backoff until it is fixed",
				"rail", name, "err", err, "try", attempt)
			// The answer may be a gateway's that forwarded the POST (or a
			// token that expired while the create was applied): the
			// payout may still land. As after an unknown outcome, the
			// lookup before any other POST waits until none can, and a
			// later refusal is not taken at its word.
			repeat = true
			if werr := j.railWait(max(e.cfg.RetryMax, e.cfg.RecoveryGrace)); werr != nil {
				return patienceOr(werr, err)
			}
		default: // Retryable: not applied
			e.m.retries.WithLabelValues("post").Inc()
			if werr := j.railWait(e.backoff(attempt)); werr != nil {
				return patienceOr(werr, err)
			}
		}
	}
}

// provenUnposted returns, per position, whether the payee may be posted
// without a lookup (nil when none may). newPayeeProof: a payee no
// dispatcher can have posted is one that
//
//   - this attempt's dedupe indexed for the first time (its SET NX wrote
//     the entry: no batch of this epoch owned it, and no listing marked it);
//   - in a complete epoch: one whose index holds every payout the
//     single-payout rails listed once every POST from before the epoch had
//     landed (a recovery that waited its grace before listing them, or a
//     first start listed again after its grace: completeEpoch). Each POST
//     of a dispatcher is preceded by its entry in the index of a ready
//     epoch, and no POST goes out past the lease fence (leaseFresh), so in
//     such an epoch a requestId without an entry was never posted in the
//     dedupe window;
//   - not all digits with a leading zero (zeroLed), a form a rail may list
//     without its zeros;
//   - of a batch no earlier attempt may have posted (maybeSent: its record
//     is not posting or posted and has no firstPostAt), so no entry that
//     expired or was lost leaves a POST of this batch unaccounted for;
//   - of a batch created, and requested (the request's requestedAt), within
//     the dedupe window, less a day (or a quarter of the window) for the
//     clocks: an entry lives the window from its batch's dedupe, which came
//     after the request and its batch were made, so a request that young
//     cannot have outlived the entry of an earlier POST of it. A batch
//     redelivered from far back (an offset reset), or a request published
//     again as it was (its requestedAt) after the window, is looked up.
//
// What the proof does not cover: a requestId republished with a new
// requestedAt more than DEDUPE_WINDOW after an earlier payout of it (the
// window in which a requestId is single-use; Wompi's batches are paid again
// then too), and anything but this deployment posting our requestIds to
// the rail's account. DISPATCHER_LOOKUP_EVERY_PAYEE turns the proof off
// for such accounts.
func (j *job) provenUnposted(maybeSent bool) []bool {
	e := j.e
	if e.cfg.LookupEveryPayee || e.mayEvict.Load() || maybeSent || j.unposted == nil {
		return nil
	}
	now := e.now()
	margin := min(24*time.Hour, e.cfg.DedupeWindow/4)
	young := func(t time.Time) bool {
		age := now.Sub(t)
		return age >= -margin && age <= e.cfg.DedupeWindow-margin
	}
	if !young(j.b.CreatedAt) {
		return nil
	}
	var out []bool
	for i, u := range j.unposted {
		if u && young(j.b.Transactions[i].RequestedAt) && !zeroLed(j.b.Transactions[i].RequestID) {
			if out == nil {
				out = make([]bool, len(j.unposted))
			}
			out[i] = true
		}
	}
	return out
}

// zeroLed reports an all-digit requestId with a leading zero. A rail that
// keeps it as a number lists it without its zeros (our 000777 as 777), and
// a recovery indexes the form listed: the index's silence proves nothing
// new of it, so it is always looked up (a lookup refuses to call a folded
// form absent).
func zeroLed(id string) bool {
	return len(id) > 1 && id[0] == '0' && strings.Trim(id, "0123456789") == ""
}

// findSingle looks our id up, asking again with backoff while the provider
// fails retryably: absence is never assumed.
func (j *job) findSingle(cl rail.SinglePayouts, id string) ([]rail.Payout, error) {
	return lookup(j, cl.Rail(), func(ctx context.Context) ([]rail.Payout, error) { return cl.Find(ctx, id) })
}

// findPayee is findSingle for payee i, under its requestId and, when a
// recovery listed a payout under a form of it in another case (j.echoes)
// or a create's answer named it in one (echo, when not ""), under that
// form too: a rail that keeps our id in another case may filter by its own
// form only. A payout under another form proves nothing (ours echoed, or
// another request's whose id differs only in case): the payee is neither
// adopted nor posted, and waits as for an unanswered lookup.
func (j *job) findPayee(cl rail.SinglePayouts, i int, echo string) ([]rail.Payout, error) {
	id := j.b.Transactions[i].RequestID
	form, echoed := j.echoes[i]
	if echo != "" {
		form, echoed = echo, true
	}
	if !echoed {
		return j.findSingle(cl, id)
	}
	forms := echoForms(id, form)
	return lookup(j, cl.Rail(), func(ctx context.Context) ([]rail.Payout, error) {
		ps, err := cl.Find(ctx, id)
		if err != nil || len(ps) > 0 {
			return ps, err
		}
		for _, f := range forms {
			if err := j.callToken(cl.Rail()); err != nil {
				return nil, err
			}
			other, err := cl.Find(ctx, f)
			if err != nil {
				return nil, err
			}
			if len(other) > 0 {
				return nil, &rail.Error{Rail: cl.Rail(), Op: "find", Class: rail.Permanent, Code: "ECHOED_ID",
					Message: "the rail holds a payout under our id in another case: absence cannot be proven"}
			}
		}
		return nil, nil
	})
}

// echoForms lists the forms, other than id, a payee's id may be held in
// at its rail, from dedupe's echo: the form a recovery listed, the id in
// lower case ("="), or, when the form was not kept (""), the id in upper
// and in lower case.
func echoForms(id, echo string) []string {
	var forms []string
	switch echo {
	case "=":
		forms = []string{strings.ToLower(id)}
	case "":
		forms = []string{strings.ToUpper(id), strings.ToLower(id)}
	default:
		forms = []string{echo}
	}
	out := forms[:0]
	for _, f := range forms {
		if f != id && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// findMany looks ids up in one call of mf, retrying as findSingle does.
//
// A listing it cannot compare with our ids (rail.Permanent: an item
// without our id, or naming one in another case) ends it at once with
// errUnprovable: the group's payees then look themselves up alone.
func (j *job) findMany(name rail.Name, mf rail.ManyFinder, ids []string) (map[string][]rail.Payout, error) {
	return lookup(j, name, func(ctx context.Context) (map[string][]rail.Payout, error) {
		found, err := mf.FindMany(ctx, ids)
		if err != nil && rail.ClassOf(err) == rail.Permanent {
			return nil, fmt.Errorf("%w: %w", errUnprovable, err)
		}
		return found, err
	})
}

// errUnprovable ends a group lookup whose listing proves nothing for the
// group (findMany).
var errUnprovable = errors.New("dispatch: the group lookup's listing cannot prove absence")

// lookup makes one lookup call on a single-payout rail (a rate-limit token,
// the HTTP timeout, the metrics), asking again after a failure until the
// rail's patience runs out (errPatience) or the job ends.
func lookup[T any](j *job, name rail.Name, find func(ctx context.Context) (T, error)) (T, error) {
	e := j.e
	var zero T
	for attempt := 0; ; attempt++ {
		if err := j.callToken(name); err != nil {
			return zero, err
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(j.soft, e.cfg.HTTPTimeout)
		ps, err := find(ctx)
		cancel()
		e.m.observeRail(name, "find", start, err)
		if err == nil {
			return ps, nil
		}
		if errors.Is(err, errUnprovable) {
			return zero, err
		}
		if rail.ClassOf(err) == rail.Unauthorized {
			code := "401"
			if re := (*rail.Error)(nil); errors.As(err, &re) && re.HTTPStatus != 0 {
				code = strconv.Itoa(re.HTTPStatus)
			}
			e.m.railBlocked.WithLabelValues(string(name), code).Inc()
			j.log.Error("dispatch: single payout lookup refused (credentials, permission or base URL); retrying at the longest backoff",
				"rail", name, "err", err)
			if werr := j.railWait(e.cfg.RetryMax); werr != nil {
				return zero, fmt.Errorf("%w: %w", werr, err)
			}
			continue
		}
		e.m.retries.WithLabelValues("lookup").Inc()
		j.log.Warn("dispatch: single payout lookup failed; asking again", "rail", name, "err", err, "try", attempt)
		if werr := j.railWait(e.backoff(attempt)); werr != nil {
			return zero, fmt.Errorf("%w: %w", werr, err)
		}
	}
}

// patienceOr is the outcome of a payee whose wait before a retry ended
// with werr: unavailable when the rail's patience ran out (err is the last
// failure), else werr (the job's context ended).
func patienceOr(werr, err error) (singleOutcome, error) {
	if errors.Is(werr, errPatience) {
		return singleOutcome{unavailable: fmt.Errorf("%w: %w", werr, err)}, nil
	}
	return singleOutcome{}, werr
}

// railWait sleeps d before a retry of a failing rail, or returns
// errPatience when the batch's patience with the rail would end first (the
// job's own context ending returns its error).
func (j *job) railWait(d time.Duration) error {
	if time.Now().Add(d).After(j.railDeadline) {
		return errPatience
	}
	return sleep(j.soft, d)
}

// callToken waits for the next call the batch reserved from its rail's
// rate limit, reserving one more once they are used up (retries).
func (j *job) callToken(name rail.Name) error {
	if j.pacer != nil {
		ok, err := j.pacer.Wait(j.soft)
		if ok || err != nil {
			return err
		}
	}
	p, err := j.e.bulk[name].Reserve(j.soft, 1)
	if err != nil {
		return err
	}
	_, err = p.Wait(j.soft)
	return err
}

// adoptable is the payout a payee found more than once under our id
// adopts: the earliest that may still pay, else the earliest. Adopted, a
// payout that failed (or was cancelled, refused or returned) while another
// under the same id pays would be the one handed off and followed: the
// request would end FAILED while the rail paid it, and be asked again.
func adoptable(ps []rail.Payout) rail.Payout {
	live := make([]rail.Payout, 0, len(ps))
	for _, p := range ps {
		switch p.Status {
		case payout.StatusFailed, payout.StatusCancelled, payout.StatusRejected, payout.StatusReturned:
		default:
			live = append(live, p)
		}
	}
	if len(live) > 0 && len(live) < len(ps) {
		return earliest(live)
	}
	return earliest(ps)
}

func earliest(ps []rail.Payout) rail.Payout {
	best := 0
	for i := range ps {
		if !ps[i].CreatedAt.IsZero() && (ps[best].CreatedAt.IsZero() || ps[i].CreatedAt.Before(ps[best].CreatedAt)) {
			best = i
		}
	}
	return ps[best]
}

// singleRequest maps one transaction of the batch to the rail's request.
// A batch carries no currency: its rail has one (rail.Currency).
func singleRequest(name rail.Name, t *payout.Transaction) rail.PayoutRequest {
	return rail.PayoutRequest{ID: t.RequestID, AmountInCents: t.AmountInCents, Currency: rail.Currency(name),
		Description: "payout " + t.RequestID, Payee: rail.PayeeOf(&t.Beneficiary)}
}

// finishSingle settles a single-payout batch once every payee has an
// outcome: the hand-off of the paid ones (one pipelined round trip),
// SUBMITTED for them through the status gate, REJECTED for the refused,
// the drops, then state done; or, when some were deferred, those in a
// smaller copy of the batch on the deferred topic.
//
// fresh says the claim record was new, or left "claimed" by an attempt
// that ended before its lookups (claim.unproved). A payee the provider already held
// then was paid before Redis lost our records (or by the original of a copy
// republished after that loss): the tracker may have emitted its later
// statuses already, and its record of them is gone too, so no SUBMITTED is
// emitted for it (as for a Wompi batch found after a loss); the hand-off is
// recorded, so the tracker follows it.
func (j *job) finishSingle(name rail.Name, outs []singleOutcome, fresh bool) error {
	e, b := j.e, j.b
	now := e.now()
	var ps []submitted.Payout
	var txs [][]submitted.Transaction
	var recs []*kgo.Record
	var gate []track.GateItem
	var rejected []*kgo.Record
	refused := map[string]refusal{}
	var deferred []int
	var deferReason *rail.Error
	unavailable := 0
	for _, i := range j.keep {
		if o := outs[i]; o.paid == nil && o.rejected == nil {
			deferred = append(deferred, i)
			if o.unavailable != nil {
				unavailable++
			} else if deferReason == nil {
				deferReason = o.deferred
			}
		}
	}
	for _, i := range j.keep {
		t := &b.Transactions[i]
		o := outs[i]
		switch {
		case o.paid != nil:
			hid := rail.HandOffID(name, o.paid.ProviderID)
			ps = append(ps, submitted.Payout{PayoutID: hid, BatchID: b.BatchID, OriginAccountID: b.OriginAccountID,
				PaymentType: string(b.PaymentType), TotalAmountInCents: t.AmountInCents, TransactionCount: 1, SubmittedAt: now})
			txs = append(txs, []submitted.Transaction{{TransactionID: o.paid.ProviderID, RequestID: t.RequestID, BatchID: b.BatchID,
				PayoutID: hid, AmountInCents: t.AmountInCents, OriginAccountID: b.OriginAccountID}})
			pid := o.paid.ProviderID
			if o.found && (fresh || j.listed[t.RequestID]) {
				// Found on a new claim (after a Redis loss), or by a batch
				// that took its entry over from a recovery's mark: it may
				// have been paid, and its statuses emitted, before the loss.
				e.m.lateSkipped.Inc()
				j.log.Warn("dispatch: payee found at the provider on a new claim (after a Redis loss): no SUBMITTED",
					"rail", name, "request_id", t.RequestID)
				continue
			}
			r, err := e.statusRecord(b, t, payout.StatusSubmitted, "", "", nil, &pid,
				payout.EventID("status", t.RequestID, string(payout.StatusSubmitted), b.BatchID))
			if err != nil {
				return err
			}
			recs = append(recs, r)
			gate = append(gate, track.GateItem{ID: t.RequestID, To: string(payout.StatusSubmitted), Ref: pid})
		case o.rejected != nil:
			code := o.rejected.Code
			if code == "" {
				code = string(payout.ReasonDispatchFailed)
			}
			rf := newRefusal(code, o.rejected.Message, false)
			refused[t.RequestID] = rf
			r, err := e.statusRecord(b, t, payout.StatusRejected, rf.code, rf.message, nil, nil,
				payout.EventID("status", t.RequestID, string(payout.StatusRejected), b.BatchID))
			if err != nil {
				return err
			}
			rejected = append(rejected, r)
		}
	}
	if err := e.handoff.RecordMany(j.hard, ps, txs, now); err != nil {
		return fmt.Errorf("dispatch: record hand-off: %w", err)
	}
	dr, err := e.dropRecords(b, j.src, j.drops, nil)
	if err != nil {
		return err
	}
	ungated := append(dr, rejected...)
	if len(ungated) > 0 {
		// No status gate holds a refused payee's REJECTED (nor a drop):
		// the gate's keys are the paid payees' SUBMITTED, and a Redis
		// loss takes them anyway. Given up unanswered, it could land
		// after the payee's POST by the batch's next attempt, whose look
		// (payeesRejectedOnTopic) ran before it landed: once the lease
		// is lost, the client is closed before a recovery can end
		// (holdLease), other payees' POSTs before it or not.
		j.ungated = true
	}
	if len(deferred) == 0 {
		// The refusals are recorded before their REJECTED goes out: the
		// batch read again posts none of them (runSingle).
		if len(refused) > 0 {
			if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID, []string{statePosting}, statePosting,
				refusedFields(refused)...); err != nil {
				return err
			}
		}
		if err := j.produceGated(recs, gate, ungated); err != nil {
			return err
		}
		if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID, []string{statePosting}, stateDone); err != nil {
			return err
		}
		e.m.batches.WithLabelValues("submitted").Inc()
		e.m.transactions.Add(float64(len(ps)))
		j.log.Info("dispatch: single payouts submitted", "rail", name, "paid", len(ps), "rejected", len(rejected), "dropped", len(j.drops))
		return nil
	}
	// Some payees wait: the others are settled here, those wait in a copy
	// of the batch holding only them.
	reason, msg, notBefore := payout.ReasonDailyLimit, "the provider refused the payout for now", now.Add(e.cfg.DeferBalanceRetry)
	if deferReason != nil {
		msg = deferReason.Message
		if strings.Contains(strings.ToLower(deferReason.Code+" "+deferReason.Message), "balance") {
			reason = payout.ReasonInsufficientBalance
		}
	}
	if unavailable > 0 {
		reason, notBefore = rail.ReasonRailUnavailable, now.Add(e.railRetryAfter(b.Attempt))
		msg = string(name) + " kept failing for longer than the dispatcher's patience; looked up again before any POST"
		j.log.Warn("dispatch: rail unavailable: its unsettled payees wait on the deferred topic",
			"rail", name, "waiting", len(deferred), "paid", len(ps), "retry_at", notBefore.UTC())
	}
	return j.deferSingle(recs, gate, ungated, deferred, reason, msg, notBefore, len(ps), refused)
}

// deferSingle settles what is settled (recs through the gate, ungated as
// they are) and moves the payees at positions wait to a copy of the batch
// on the deferred topic, DEFERRED each. A POST of a waiting payee may have
// landed, and the tracker may already have emitted its status from the
// provider's webhook: so its DEFERRED goes through the status gate too,
// and is not emitted after a later status.
func (j *job) deferSingle(recs []*kgo.Record, gate []track.GateItem, ungated []*kgo.Record, wait []int,
	reason payout.Reason, msg string, notBefore time.Time, paid int, refused map[string]refusal) error {
	e, b := j.e, j.b
	// The refusals are recorded with the move, before their REJECTED goes
	// out (runSingle).
	if _, err := e.st.transition(j.hard, j.owner, j.epoch, b.BatchID, []string{statePosting}, stateDeferred,
		refusedFields(refused)...); err != nil {
		return err
	}
	copyRec, statuses, next, err := j.deferredCopy(wait, reason, msg, notBefore)
	if err != nil {
		return err
	}
	for k, i := range wait {
		if _, ok := j.refusedOnTopic[b.Transactions[i].RequestID]; ok {
			// Its REJECTED is on the topic from before a Redis loss (the
			// gate's record of it lost), and its lookup did not end (the
			// rail down): no DEFERRED after it. The copy looks it up,
			// and for its REJECTED, again.
			continue
		}
		if j.listed[b.Transactions[i].RequestID] && (j.unlisted == nil || !j.unlisted[i]) {
			// Taken over from a recovery's mark and never looked up
			// absent: it may have been paid, and its statuses emitted up
			// to a final one, before the loss (the gate's record of them
			// lost with it). It waits in the copy without a DEFERRED, as
			// in deferBatch.
			continue
		}
		recs = append(recs, statuses[k])
		gate = append(gate, track.GateItem{ID: b.Transactions[i].RequestID, To: string(payout.StatusDeferred)})
	}
	if err := j.produceGated(recs, gate, ungated); err != nil {
		return err
	}
	// The copy last, once the REJECTED of the payees it leaves out are
	// written (deferBatch says why).
	if err := j.produce(copyRec); err != nil {
		return err
	}
	e.m.deferred.WithLabelValues(string(reason)).Inc()
	e.m.batches.WithLabelValues("deferred").Inc()
	e.m.transactions.Add(float64(paid))
	j.log.Info("dispatch: single payouts partly deferred", "reason", reason, "waiting", len(wait), "paid", paid,
		"not_before", notBefore.UTC(), "next_attempt", next)
	return nil
}
