package track

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Gate lets another worker emit status transitions through the tracker's
// per-request compare-and-set, so that payouts.status.v1 keeps one
// forward-only order whichever worker observes a status first. The
// dispatcher produces SUBMITTED (and a batch's PENDING) through it: a
// webhook that beat the dispatcher's record has already moved the request
// on, and the late SUBMITTED is then not emitted at all, never emitted
// after APPROVED.
//
// Use: take Epoch before reading what justifies the statuses (the POST, the
// lookup, the transactions listing), Begin with it, produce the events whose
// transition is Ours, then End with whether each produce succeeded. Prefix and StatusTTL must be the
// tracker's (REDIS_PREFIX, the tracker's status TTL).
type Gate struct {
	s *statusStore
	// LeaseLost, if set, is told of a renewal that could not keep every
	// lease of a ticket (err is Redis's error, or nil when a key was taken
	// over): another worker may then emit a later status before the
	// ticket's produce lands. Set it before the first Begin; it must not
	// call End or Leave.
	LeaseLost func(held, want int, err error)
}

// DefaultStatusTTL is how long the tracker keeps a last-known status.
const DefaultStatusTTL = 30 * 24 * time.Hour

// NewGate returns a gate on the tracker's status keys. lease is how long a
// ticket's keys stay held after their holder stops renewing them (it dies):
// while a ticket is open (from Begin to End) its leases are renewed, so a
// slow produce, or a wait for another ticket's keys, never lets another
// worker emit a later status first.
func NewGate(rdb redis.UniversalClient, prefix string, lease time.Duration) *Gate {
	return &Gate{s: newStatusStore(rdb, prefix, DefaultStatusTTL, lease)}
}

// GateItem is one transition to emit: a request's status (Batch false) or a
// batch's (Batch true). Ref is the transaction id (request) or payout id
// (batch) the status belongs to. Via, when set (a request's only), is a
// status the caller emits before To under the same attempt (the
// dispatcher's SUBMITTED before the PENDING its listing read): the item is
// granted only where Via itself may follow, so Via never follows a status
// that may be on the topic; Previous is then Via's previous status.
type GateItem struct {
	Batch bool
	ID    string
	To    string
	Via   string
	Ref   string
}

// GateVerdict is what Begin decided for one item.
type GateVerdict int

// The verdicts of Begin.
const (
	// GateOurs: emit it, then End.
	GateOurs GateVerdict = iota
	// GateSkip: the key already holds this status or a later one (a
	// duplicate, or a later status another worker emitted first), or Redis
	// lost its data since Epoch was taken, so a later status may have been
	// emitted and forgotten: emit nothing.
	GateSkip
	// GateBusy: another attempt holds the key: try again shortly.
	GateBusy
)

// GateTicket is the outcome of Begin, passed back to End.
type GateTicket struct {
	items    []GateItem
	trs      []transition
	tokens   []string
	Verdicts []GateVerdict
	// Previous holds each Ours item's confirmed status before it ("" for
	// none): the event's previousStatus.
	Previous []string
	hold     *holder // renews the Ours items' leases until End or Leave
}

// Epoch returns the tracker's Redis-loss marker and the stamp of the Redis
// process (of each master, on a Cluster), read from Redis (one call, two
// INFO each, per job): a cached stamp older than a failover or a restart
// would make Begin skip every non-final status of the job; pass it to
// Begin.
func (g *Gate) Epoch(ctx context.Context) (string, error) {
	ep, err := g.s.freshEpoch(ctx)
	if err != nil {
		return "", fmt.Errorf("track: gate epoch: %w", err)
	}
	return ep, nil
}

// Begin runs the compare-and-set for every item in one pipelined round
// trip (and one read of the epoch marker and the Redis process's stamp
// more when a key held no status, or a non-final item was granted).
// The statuses are verified: the caller read them from the provider after
// taking since from Epoch. Its keys usually hold no status yet: each is
// written by one SET NX before any read (transition.fresh), and read only
// when it exists.
func (g *Gate) Begin(ctx context.Context, since string, items []GateItem) (*GateTicket, error) {
	t := &GateTicket{items: items, trs: make([]transition, len(items)), tokens: make([]string, len(items)),
		Verdicts: make([]GateVerdict, len(items))}
	token := newToken()
	for i, it := range items {
		k, final := kindRequest, payout.Status(it.To).Final()
		if it.Batch {
			k, final = kindBatch, payout.BatchStatus(it.To).Final()
		}
		t.trs[i] = transition{kind: k, id: it.ID, to: it.To, ref: it.Ref, final: final, verified: true, since: since, fresh: true}
		if !it.Batch {
			t.trs[i].via = it.Via
		}
		t.tokens[i] = token // one per Begin: End confirms them with one key
	}
	outs, froms, err := g.s.beginMany(ctx, t.trs, t.tokens)
	if err != nil {
		return nil, fmt.Errorf("track: gate begin: %w", err)
	}
	t.Previous = froms
	var ours []int
	for i, o := range outs {
		switch o {
		case outcomeOK:
			t.Verdicts[i] = GateOurs
			ours = append(ours, i)
		case outcomeBusy:
			t.Verdicts[i] = GateBusy
		default:
			t.Verdicts[i] = GateSkip
			t.Previous[i] = ""
		}
	}
	t.hold = g.s.keepAlive(pick(t.trs, ours), pick(t.tokens, ours), pick(t.Previous, ours), true, g.LeaseLost)
	return t, nil
}

// End confirms (produced) or abandons every Ours item of t in one pipelined
// round trip, and stops renewing their leases. An abandoned transition may
// be emitted again later with the same eventId; it never lets an earlier
// status follow it. Abandon only what is known not to be written: a
// produce whose outcome is unknown (the client closed) is left to Leave.
// EndAs ends each item as its own events ended.
func (g *Gate) End(ctx context.Context, t *GateTicket, produced bool) error {
	end := GateFailed
	if produced {
		end = GateWritten
	}
	return g.EndAs(ctx, t, func(int) GateEnd { return end })
}

// GateEnd is how the events of one Ours item of a ticket ended (EndAs).
type GateEnd int

// The ends of an item's events.
const (
	// GateWritten: the event of its To was written; the item is confirmed.
	GateWritten GateEnd = iota
	// GateFailed: the event of its To is known not written, or was never
	// given to the producer; the item is abandoned at To, so a status
	// below To stays refused.
	GateFailed
	// GateViaOnly: of an item with a Via, at most the event of its Via was
	// given to the producer (To's never was): the item is abandoned at Via,
	// so that it may be granted again (abandoned at To it would refuse its
	// own Via). Without a Via it is GateFailed.
	GateViaOnly
)

// EndAs ends every Ours item of t as how(i) says (i an index in t's
// items), in one round trip, and stops renewing their leases. Confirm only
// what was written, and abandon at the status whose event may have been
// sent: an abandoned status may be on the topic only if its record may
// have been written.
func (g *Gate) EndAs(ctx context.Context, t *GateTicket, how func(i int) GateEnd) error {
	t.hold.stop()
	ours := 0
	for _, v := range t.Verdicts {
		if v == GateOurs {
			ours++
		}
	}
	// Every item Ours, the usual case: the ticket's own transitions and
	// tokens (read, never written), not copies.
	all := ours == len(t.Verdicts)
	trs, tokens := t.trs, t.tokens
	if !all {
		trs, tokens = make([]transition, 0, ours), make([]string, 0, ours)
	}
	ok, results := make([]bool, 0, ours), make([]string, 0, ours)
	atVia := false
	for i, v := range t.Verdicts {
		if v != GateOurs {
			continue
		}
		end := how(i)
		r := endResult(end == GateWritten)
		if end == GateViaOnly && t.trs[i].via != "" {
			r, atVia = "at:"+t.trs[i].via, true
		}
		if !all {
			trs = append(trs, t.trs[i])
			tokens = append(tokens, t.tokens[i])
		}
		ok = append(ok, end == GateWritten)
		results = append(results, r)
	}
	if len(trs) == 0 {
		return nil
	}
	var err error
	if atVia {
		// Key by key: the confirmation key's call abandons at To only.
		err = g.s.endManyAs(ctx, trs, tokens, results)
	} else {
		// Every Ours item, so every attempt granted under the ticket's token.
		err = g.s.endAll(ctx, trs, tokens, ok)
	}
	if err != nil {
		return fmt.Errorf("track: gate end: %w", err)
	}
	return nil
}

// Leave stops renewing t's leases without ending its items: for a produce
// whose outcome is unknown, the keys stay held for one lease and then free,
// where End(false) would free them at once while the events may still land.
func (g *Gate) Leave(t *GateTicket) {
	t.hold.stop()
}

// SetKeyByKey makes a ticket's statuses confirmed key by key rather than by
// one confirmation key (Config.KeyByKey). Set it before the first Begin.
func (g *Gate) SetKeyByKey(on bool) {
	g.s.withKeyByKey(on)
}

// SetLossGrace sets how long after the status epoch marker was written no
// status is emitted on a key that holds none; DefaultLossGrace unless set,
// negative for none. Set it before the first Begin.
func (g *Gate) SetLossGrace(d time.Duration) {
	g.s.withLossGrace(d)
}
