package rail

import (
	"context"
	"iter"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// What the dispatcher needs of a batch rail besides BatchPayouts: the
// rail's word on its own availability, what it says was already consumed
// on a day, which banks it pays into, and a cheap walk of a batch's item
// ids. Each is a small interface; BatchRail is all of them.

// Health is a rail's own word on its availability.
type Health string

// The health states. A rail may say another word; only Unhealthy pauses
// posting.
const (
	Healthy       Health = "HEALTHY"
	PartialOutage Health = "PARTIAL_OUTAGE"
	// Unhealthy: the rail says it cannot take creates now. The dispatcher
	// pauses its POSTs (within its patience) until the rail says otherwise.
	Unhealthy Health = "UNHEALTHY"
)

// HealthCheck is a rail that reports its own availability (Wompi's GET
// /health).
type HealthCheck interface {
	// Health returns the rail's state, as the rail words it. An error says
	// nothing about the rail's state: keep the last one known.
	Health(ctx context.Context) (Health, error)
}

// Usage is what a batch rail says was consumed on one business day of
// its own (rail.Location), across the client's accounts. The dispatcher
// seeds its daily budgets from it when Redis does not know the day.
type Usage struct {
	// Day is the day (YYYY-MM-DD) the figures are for, when the rail says
	// it; "" when it does not, and then the figures are today's, whatever
	// day was asked for (Wompi's published GET /limits).
	Day string
	// ConsumedInCents is the client's amount consumed that day, every
	// account together: an upper bound of each account's.
	ConsumedInCents int64
	// Accounts are per-account figures, when the rail gives them (exact,
	// unlike ConsumedInCents).
	Accounts []AccountUsage
	// Batches is the number of batches sent that day, when the rail says it
	// (with Day set); 0 when unknown: see DayUsage.BatchesListedOn.
	Batches int
}

// AccountUsage is one origin account's figures for a day.
type AccountUsage struct {
	AccountID       string
	ConsumedInCents int64
	// DailyLimitInCents is the account's own daily limit at the rail; 0
	// when the rail does not say.
	DailyLimitInCents int64
}

// DayUsage is a batch rail that says what was consumed on a day. Both calls
// are reads; their errors carry a Class like every other.
type DayUsage interface {
	// UsageOn returns the rail's figures for day (YYYY-MM-DD). The rail may
	// answer for another day than the one asked (Usage.Day).
	UsageOn(ctx context.Context, day string) (Usage, error)
	// BatchesListedOn counts the batches the rail lists for day: an
	// estimate of the batches sent that day, for when Usage does not say
	// (the rail may date a batch by its creation or by its dispersion).
	BatchesListedOn(ctx context.Context, day string) (int, error)
}

// Background is how a rail runs a read of its own that serves every
// caller (a shared refresh of a table), which must not be bound by the
// context of the call that happened to start it.
type Background struct {
	// Life ends the read: the caller's own life (the engine's).
	Life context.Context
	// Timeout bounds one read.
	Timeout time.Duration
	// Go runs the read's goroutine, so that the caller can wait for it
	// when it stops (e.g. a sync.WaitGroup's Go). Required.
	Go func(func())
	// Observe, when set, is told of each read: the rail's name for it
	// (e.g. "banks"), its start, and its error.
	Observe func(op string, start time.Time, err error)
}

// BankDirectory is a batch rail that knows which banks it pays into, so
// that a payee whose bank it does not know is refused before the batch is
// sent, and the others are sent with the rail's own bank ids
// (BatchItem.ProviderBankID).
type BankDirectory interface {
	// BankIDs returns the rail's id of each bank code, "" for a code the
	// rail does not know. The rail's table is read when there is none (the
	// caller waits, for at most ctx), read again in the background when it
	// is old (the old one is served meanwhile), and read again, at most
	// once a minute, for an unknown code (the caller waits). Every read is
	// shared by every caller that needs it and runs under bg. An error is
	// returned only when no table is known, or ctx ends while waiting.
	BankIDs(ctx context.Context, bg Background, codes []string) ([]string, error)
}

// ItemRef maps one item of a batch back to our request, with its status as
// the same listing read it.
type ItemRef struct {
	ID             string // our requestId, "" when the rail does not hold it
	ProviderID     string
	Status         payout.Status // mapped, as Items maps it; "" while the provider status maps to nothing known
	ProviderStatus string        // as the provider says it
}

// ItemIndex is a batch rail that can walk a batch's item ids more cheaply
// than Items (no payee data, the largest pages the rail allows).
type ItemIndex interface {
	// ItemRefs walks every item of a batch, every page. A failed page
	// yields its error once and stops.
	ItemRefs(ctx context.Context, providerBatchID string) iter.Seq2[ItemRef, error]
}

// BatchRail is everything the dispatcher needs of a batch rail.
type BatchRail interface {
	BatchPayouts
	HealthCheck
	DayUsage
	BankDirectory
	ItemIndex
	// Limits are the rail's published daily limits: the defaults of the
	// dispatcher's budgets when nothing else sets them.
	Limits() DailyLimits
}

// DailyLimits are a batch rail's published daily limits.
type DailyLimits struct {
	AmountInCents int64 // an account's money per business day
	Batches       int   // the client's batches per business day
}
