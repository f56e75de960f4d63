package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of [BudgetConfig].
const (
	// DefaultDailyBatchCap is Wompi's limit of batches per client per day.
	DefaultDailyBatchCap = 3800
	// DefaultAccountDailyLimit is the default money limit per origin
	// account per day: COP 1,500,000,000 in cents.
	DefaultAccountDailyLimit int64 = 150_000_000_000
	// DefaultBudgetTTL is how long a day's budget stays in Redis after its
	// last change.
	DefaultBudgetTTL = 72 * time.Hour
	// DefaultPrefix starts every budget key.
	DefaultPrefix = "payouts:"
)

// BudgetConfig configures a [Budget]. The zero value uses the defaults.
type BudgetConfig struct {
	// Prefix starts every key, which is Prefix + "{budget:YYYY-MM-DD}".
	// Default [DefaultPrefix]. It must not contain braces: the hash tag is
	// the day, so one day's whole budget is in one Cluster slot.
	Prefix string
	// DailyBatchCap is the number of batches the client may post per Bogota
	// day, across all its accounts. Default [DefaultDailyBatchCap].
	DailyBatchCap int
	// AccountDailyLimit returns the money limit, in cents, of an origin
	// account per Bogota day. A negative result is an error; zero blocks the
	// account. Default: [DefaultAccountDailyLimit] for every account.
	AccountDailyLimit func(accountID string) int64
	// TTL is how long a day's budget outlives its last change. Default
	// [DefaultBudgetTTL].
	TTL time.Duration
}

// Budget reserves batches against the Bogota-day limits: the amount against
// the origin account's daily money limit and one slot against the client's
// daily batch count, both or neither, atomically across all replicas.
//
// A day's budget is one Redis hash, Prefix+"{budget:<day>}", with fields
//
//	seeded:<accountId>  marker set by Seed; Reserve needs it
//	amt:<accountId>     cents reserved (or consumed, per Seed) by the account
//	batches             batch slots reserved (or consumed) by the client
//	res:<batchId>       "<amount>:<accountId>", the batch's reservation
//
// Each operation is one EVALSHA round trip whatever the batch size. A Budget
// is safe for concurrent use.
type Budget struct {
	rdb    redis.UniversalClient
	prefix string
	cap    int
	limit  func(string) int64
	ttlMs  int64
}

// NewBudget returns a Budget on rdb (a single-node, failover or cluster
// client), applying cfg's defaults.
func NewBudget(rdb redis.UniversalClient, cfg BudgetConfig) (*Budget, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil Redis client", ErrInvalid)
	}
	b := &Budget{rdb: rdb, prefix: cfg.Prefix, cap: cfg.DailyBatchCap, limit: cfg.AccountDailyLimit}
	if b.prefix == "" {
		b.prefix = DefaultPrefix
	}
	if strings.ContainsAny(b.prefix, "{}") {
		return nil, fmt.Errorf("%w: budget prefix %q must not contain braces", ErrInvalid, b.prefix)
	}
	if b.cap == 0 {
		b.cap = DefaultDailyBatchCap
	}
	if b.cap < 0 {
		return nil, fmt.Errorf("%w: DailyBatchCap %d is negative", ErrInvalid, b.cap)
	}
	if b.limit == nil {
		b.limit = func(string) int64 { return DefaultAccountDailyLimit }
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultBudgetTTL
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("%w: TTL %v", ErrInvalid, ttl)
	}
	b.ttlMs = ttl.Milliseconds()
	return b, nil
}

// Reservation is one batch's claim on a day's budget.
type Reservation struct {
	BatchID       string
	AccountID     string // the origin account the batch pays from
	Day           string // Bogota calendar day, "YYYY-MM-DD" (payout.Day)
	AmountInCents int64  // the batch total, > 0
}

// Denial says why a reservation was not granted. The values are stable and
// low-cardinality, fit for metric labels and reason codes.
type Denial string

// Reasons a reservation is denied.
const (
	// DeniedBatchCount: the client has used all its batch slots for the
	// day. Checked first: no batch of any account can go out today.
	DeniedBatchCount Denial = "batch_count"
	// DeniedAmount: the amount would take the account past its daily
	// money limit (including an amount larger than the limit itself).
	DeniedAmount Denial = "amount"
)

// Grant is the outcome of [Budget.Reserve].
type Grant struct {
	// Granted is true when the batch holds the reservation, fresh or from
	// an earlier call (AlreadyHeld).
	Granted bool
	// Denied is the reason when Granted is false.
	Denied Denial
	// AlreadyHeld is true when the batch already held this reservation;
	// nothing was counted again.
	AlreadyHeld bool
	// UsedAmountInCents is the account's reserved amount for the day after
	// the call, and AccountLimitInCents its limit.
	UsedAmountInCents   int64
	AccountLimitInCents int64
	// UsedBatches is the client's reserved batch count for the day after
	// the call, and BatchCap the cap.
	UsedBatches int
	BatchCap    int
}

// Usage is a day's consumption as Redis knows it.
type Usage struct {
	// Seeded is false when Redis has no budget for the account that day:
	// Reserve would return ErrNotSeeded.
	Seeded        bool
	AmountInCents int64 // the account's reserved amount
	Batches       int   // the client's reserved batch count
}

// Script results: the first element of the reply.
const (
	codeGranted     = 1
	codeAlreadyHeld = 2
	codeDeniedCount = 3
	codeDeniedAmt   = 4
	codeNotSeeded   = 5
	codeConflict    = 6
)

// reserveScript: KEYS[1] day hash; ARGV batchId, accountId, amount,
// accountLimit, batchCap, ttlMs. Reply {code, usedAmount, usedBatches,
// existingReservation}.
var reserveScript = redis.NewScript(`
local h = KEYS[1]
local batch, acct = ARGV[1], ARGV[2]
local amount, limit, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local amtField = 'amt:' .. acct
if redis.call('HEXISTS', h, 'seeded:' .. acct) == 0 then
  return {5, 0, 0, ''}
end
local used = tonumber(redis.call('HGET', h, amtField) or '0')
local batches = tonumber(redis.call('HGET', h, 'batches') or '0')
local held = redis.call('HGET', h, 'res:' .. batch)
if held then
  if held ~= (ARGV[3] .. ':' .. acct) then
    return {6, used, batches, held}
  end
  return {2, used, batches, held}
end
if batches + 1 > cap then
  return {3, used, batches, ''}
end
if used + amount > limit then
  return {4, used, batches, ''}
end
used = redis.call('HINCRBY', h, amtField, amount)
batches = redis.call('HINCRBY', h, 'batches', 1)
redis.call('HSET', h, 'res:' .. batch, ARGV[3] .. ':' .. acct)
redis.call('PEXPIRE', h, ARGV[6])
return {1, used, batches, ''}
`)

// releaseScript: KEYS[1] day hash; ARGV batchId. Reply 1 when released,
// 0 when the batch held nothing.
var releaseScript = redis.NewScript(`
local h = KEYS[1]
local field = 'res:' .. ARGV[1]
local held = redis.call('HGET', h, field)
if not held then
  return 0
end
local sep = string.find(held, ':', 1, true)
local amount = tonumber(string.sub(held, 1, sep - 1))
local amtField = 'amt:' .. string.sub(held, sep + 1)
local used = tonumber(redis.call('HGET', h, amtField) or '0')
if used >= amount then
  redis.call('HINCRBY', h, amtField, -amount)
else
  redis.call('HSET', h, amtField, 0)
end
local batches = tonumber(redis.call('HGET', h, 'batches') or '0')
if batches >= 1 then
  redis.call('HINCRBY', h, 'batches', -1)
end
redis.call('HDEL', h, field)
return 1
`)

// seedScript: KEYS[1] day hash; ARGV accountId, amount, batches, ttlMs.
// Reply {usedAmount, usedBatches}.
var seedScript = redis.NewScript(`
local h = KEYS[1]
local amtField = 'amt:' .. ARGV[1]
local used = tonumber(redis.call('HGET', h, amtField) or '0')
local amount = tonumber(ARGV[2])
if amount > used then
  redis.call('HSET', h, amtField, ARGV[2])
  used = amount
end
local batches = tonumber(redis.call('HGET', h, 'batches') or '0')
local seen = tonumber(ARGV[3])
if seen > batches then
  redis.call('HSET', h, 'batches', ARGV[3])
  batches = seen
end
redis.call('HSET', h, 'seeded:' .. ARGV[1], '1')
redis.call('PEXPIRE', h, ARGV[4])
return {used, batches}
`)

// Reserve reserves r's amount against the account's daily limit and one
// batch slot against the client's daily cap, both or neither, in one atomic
// round trip.
//
//   - Granted: both counters grew; the batch holds the reservation.
//   - Already held by the same batch (same account and amount): Granted and
//     AlreadyHeld, nothing counted again. Safe to call on every redelivery.
//   - Denied: nothing changed; Denied says which limit. The batch count is
//     checked before the amount.
//   - [ErrNotSeeded]: Redis has no budget for the account that day; Seed it
//     from Wompi and retry.
//   - [ErrReservationConflict]: the batch id holds a different reservation.
func (b *Budget) Reserve(ctx context.Context, r Reservation) (Grant, error) {
	if err := r.validate(); err != nil {
		return Grant{}, err
	}
	limit := b.limit(r.AccountID)
	if limit < 0 {
		return Grant{}, fmt.Errorf("%w: daily limit %d of account %s is negative", ErrInvalid, limit, r.AccountID)
	}
	res, err := reserveScript.Run(ctx, b.rdb, []string{b.key(r.Day)},
		r.BatchID, r.AccountID, r.AmountInCents, limit, b.cap, b.ttlMs).Slice()
	if err != nil {
		return Grant{}, fmt.Errorf("ratelimit: reserve batch %s: %w", r.BatchID, err)
	}
	if len(res) != 4 {
		return Grant{}, fmt.Errorf("ratelimit: reserve batch %s: unexpected reply %v", r.BatchID, res)
	}
	code, _ := res[0].(int64)
	used, _ := res[1].(int64)
	batches, _ := res[2].(int64)
	g := Grant{UsedAmountInCents: used, UsedBatches: int(batches), AccountLimitInCents: limit, BatchCap: b.cap}
	switch code {
	case codeGranted:
		g.Granted = true
	case codeAlreadyHeld:
		g.Granted, g.AlreadyHeld = true, true
	case codeDeniedCount:
		g.Denied = DeniedBatchCount
	case codeDeniedAmt:
		g.Denied = DeniedAmount
	case codeNotSeeded:
		return Grant{}, fmt.Errorf("%w (day %s, account %s)", ErrNotSeeded, r.Day, r.AccountID)
	case codeConflict:
		held, _ := res[3].(string)
		return Grant{}, fmt.Errorf("%w: batch %s holds %q (amount:account), asked %d:%s", ErrReservationConflict, r.BatchID, held, r.AmountInCents, r.AccountID)
	default:
		return Grant{}, fmt.Errorf("ratelimit: reserve batch %s: unexpected code %v", r.BatchID, res[0])
	}
	return g, nil
}

// Release returns the batch's reservation to the day's budget: its amount to
// the account it was reserved for (as recorded, whatever r.AccountID and
// r.AmountInCents say) and its batch slot. Only r.Day and r.BatchID are
// used. released is false when the batch held nothing (never reserved,
// already released, or lost with Redis): then nothing changes, so Release
// is safe to repeat. A released batch may be reserved again.
//
// Release only batches that were not posted to Wompi (a 4xx rejection, or
// an abandoned attempt); a posted batch has consumed the limit.
func (b *Budget) Release(ctx context.Context, r Reservation) (released bool, err error) {
	if err := validDay(r.Day); err != nil {
		return false, err
	}
	if r.BatchID == "" {
		return false, fmt.Errorf("%w: empty batch id", ErrInvalid)
	}
	n, err := releaseScript.Run(ctx, b.rdb, []string{b.key(r.Day)}, r.BatchID).Int64()
	if err != nil {
		return false, fmt.Errorf("ratelimit: release batch %s: %w", r.BatchID, err)
	}
	return n == 1, nil
}

// Seed records what Wompi reports as already consumed today by the account
// (amount) and by the client (batch count), and marks the account's budget
// as known so Reserve works. Each counter becomes max(current, given) in one
// atomic step, so reservations made concurrently, or since Wompi's answer
// was computed, are never erased; Seed can only raise counters. Call it when
// Reserve returns ErrNotSeeded, and whenever a fresh GET /limits is at hand.
//
// Reservations held before Redis lost its data are gone: Release of them is
// a no-op and Reserve of such a batch counts it again.
func (b *Budget) Seed(ctx context.Context, day, accountID string, consumedAmountInCents int64, consumedBatches int) (Usage, error) {
	if err := validDay(day); err != nil {
		return Usage{}, err
	}
	if err := validID("account id", accountID); err != nil {
		return Usage{}, err
	}
	if consumedAmountInCents < 0 || consumedBatches < 0 {
		return Usage{}, fmt.Errorf("%w: negative consumption %d cents, %d batches", ErrInvalid, consumedAmountInCents, consumedBatches)
	}
	res, err := seedScript.Run(ctx, b.rdb, []string{b.key(day)}, accountID, consumedAmountInCents, consumedBatches, b.ttlMs).Int64Slice()
	if err != nil {
		return Usage{}, fmt.Errorf("ratelimit: seed day %s account %s: %w", day, accountID, err)
	}
	if len(res) != 2 {
		return Usage{}, fmt.Errorf("ratelimit: seed day %s account %s: unexpected reply %v", day, accountID, res)
	}
	return Usage{Seeded: true, AmountInCents: res[0], Batches: int(res[1])}, nil
}

// Usage returns the day's reserved amount of the account, the client's
// reserved batch count, and whether the account's budget is seeded.
func (b *Budget) Usage(ctx context.Context, day, accountID string) (Usage, error) {
	if err := validDay(day); err != nil {
		return Usage{}, err
	}
	if err := validID("account id", accountID); err != nil {
		return Usage{}, err
	}
	vals, err := b.rdb.HMGet(ctx, b.key(day), "seeded:"+accountID, "amt:"+accountID, "batches").Result()
	if err != nil {
		return Usage{}, fmt.Errorf("ratelimit: usage day %s account %s: %w", day, accountID, err)
	}
	u := Usage{Seeded: vals[0] != nil}
	if s, ok := vals[1].(string); ok {
		if u.AmountInCents, err = strconv.ParseInt(s, 10, 64); err != nil {
			return Usage{}, fmt.Errorf("ratelimit: usage: amount %q: %w", s, err)
		}
	}
	if s, ok := vals[2].(string); ok {
		if u.Batches, err = strconv.Atoi(s); err != nil {
			return Usage{}, fmt.Errorf("ratelimit: usage: batches %q: %w", s, err)
		}
	}
	return u, nil
}

// Key returns the Redis key of a day's budget, for inspection and tests.
func (b *Budget) Key(day string) string { return b.key(day) }

func (b *Budget) key(day string) string { return b.prefix + "{budget:" + day + "}" }

func (r Reservation) validate() error {
	if err := validDay(r.Day); err != nil {
		return err
	}
	if err := validID("batch id", r.BatchID); err != nil {
		return err
	}
	if err := validID("account id", r.AccountID); err != nil {
		return err
	}
	if r.AmountInCents <= 0 {
		return fmt.Errorf("%w: amount %d cents of batch %s must be positive", ErrInvalid, r.AmountInCents, r.BatchID)
	}
	return nil
}

func validDay(day string) error {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil || t.Format(time.DateOnly) != day {
		return fmt.Errorf("%w: day %q is not YYYY-MM-DD", ErrInvalid, day)
	}
	return nil
}

// validID rejects empty, oversized or whitespace-bearing ids.
func validID(what, id string) error {
	if id == "" || len(id) > 200 || strings.ContainsAny(id, " \t\r\n") {
		return fmt.Errorf("%w: %s %q must be 1-200 bytes without whitespace", ErrInvalid, what, id)
	}
	return nil
}
