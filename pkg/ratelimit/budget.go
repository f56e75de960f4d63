package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/redisproc"
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
	// Prefix starts every key, which is Prefix + "{budget}:YYYY-MM-DD".
	// Default [DefaultPrefix]. It must not contain braces: the hash tag is
	// "{budget}", so every day's budget is in one Cluster slot and a
	// reservation can touch two days in one script.
	Prefix string
	// DailyBatchCap is the number of batches the client may post per Bogota
	// day through Wompi, across all its accounts. Default
	// [DefaultDailyBatchCap].
	DailyBatchCap int
	// BatchCaps is the daily batch cap of each rail other than Wompi, whose
	// cap is DailyBatchCap. A rail absent or at 0 has no cap: its batches
	// are counted (for Usage), never denied for their count, and its count
	// need not be seeded. SmartFastPay and WEpayout take one payee per
	// POST, so Wompi's batch cap means nothing to them.
	BatchCaps map[rail.Name]int
	// AccountDailyLimit returns the money limit, in cents, of an origin
	// account per day. A negative result is an error; zero blocks the
	// account. Default: [DefaultAccountDailyLimit] for every account.
	AccountDailyLimit func(accountID string) int64
	// TTL is how long a day's budget outlives its last change, counted from
	// the end of the day when the day is still ahead (a scheduled batch's
	// amount must last until its dispersion day is over). Default
	// [DefaultBudgetTTL].
	TTL time.Duration
}

// Budget reserves batches against the daily limits of their rail: the
// amount against the origin account's daily money limit on the batch's
// amount day, and one slot against the rail's daily batch count on its slot
// day (the day the batch is posted), both or neither, atomically across all
// replicas. Budgets are per rail: two rails never share an amount or a
// batch count, even for the same account id and day. The days are the
// rail's business days (Bogota for Wompi and SmartFastPay, Sao Paulo for
// WEpayout), computed by the caller.
//
// Each day's budget is one Redis hash, Prefix+"{budget}:<day>", with fields
//
//	<r>seeded:<accountId>  the account's amount on the day is known (Seed, SeedAmount)
//	<r>amt:<accountId>     cents reserved (or consumed, per Seed) by the account
//	<r>slots-seeded        the rail's batch count on the day is known (Seed, SeedBatches)
//	<r>batches             batch slots reserved (or consumed) through the rail
//	<r>listed              cents the rail listed as paid that no counter held (NoteListed)
//	res:<batchId>          "<r><amount>:<slotDay>:<accountId>", the batch's reservation,
//	                       in the hash of its amount day
//
// where <r> is the rail's field prefix: "" for Wompi (its fields kept their
// names from before rails, so an upgrade keeps Wompi's counters), else the
// rail's name and a slash, e.g. "wepayout/amt:<accountId>". A reservation
// record names its rail that way, so Release finds the rail's counters.
//
// All days share the hash tag {budget}, so they sit in one Redis Cluster
// slot: a reservation whose two days differ is still one atomic script.
// The price is that every budget key lives on one shard, which is nothing
// for the load: one reservation per batch, plus a seed per day, rail and
// account.
//
// Each operation is one EVALSHA round trip whatever the batch size. A Budget
// is safe for concurrent use.
type Budget struct {
	rdb    redis.UniversalClient
	prefix string
	cap    int               // Wompi's
	caps   map[rail.Name]int // other rails'; absent or 0: no cap
	limit  func(string) int64
	ttl    time.Duration
}

// NewBudget returns a Budget on rdb (a single-node, failover or cluster
// client), applying cfg's defaults.
func NewBudget(rdb redis.UniversalClient, cfg BudgetConfig) (*Budget, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil Redis client", ErrInvalid)
	}
	b := &Budget{rdb: rdb, prefix: cfg.Prefix, cap: cfg.DailyBatchCap, limit: cfg.AccountDailyLimit, ttl: cfg.TTL}
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
	b.caps = make(map[rail.Name]int, len(cfg.BatchCaps))
	for n, c := range cfg.BatchCaps {
		switch {
		case n == "" || n == rail.Wompi:
			return nil, fmt.Errorf("%w: BatchCaps names Wompi, whose cap is DailyBatchCap", ErrInvalid)
		case !n.Valid():
			return nil, fmt.Errorf("%w: BatchCaps names unknown rail %q", ErrInvalid, n)
		case c < 0:
			return nil, fmt.Errorf("%w: batch cap %d of rail %s is negative", ErrInvalid, c, n)
		}
		b.caps[n] = c
	}
	if b.limit == nil {
		b.limit = func(string) int64 { return DefaultAccountDailyLimit }
	}
	if b.ttl == 0 {
		b.ttl = DefaultBudgetTTL
	}
	if b.ttl < time.Millisecond {
		return nil, fmt.Errorf("%w: TTL %v", ErrInvalid, b.ttl)
	}
	return b, nil
}

// Reservation is one batch's claim on the daily budgets.
type Reservation struct {
	BatchID string
	// Rail is the rail the batch pays through; "" is Wompi (callers from
	// before rails). Its budgets are its own.
	Rail      rail.Name
	AccountID string // the origin account the batch pays from
	// Day is the amount day: the rail's calendar day (rail.Location),
	// "YYYY-MM-DD", whose money limit the amount counts against. For a
	// scheduled batch, the day of its dispersionDatetime; else the day it
	// is posted.
	Day string
	// SlotDay is the rail's day the batch is posted (POST /payouts): Wompi
	// counts the daily batch cap on the day a batch is sent, even when it
	// is scheduled for a later day. For an immediate batch it equals Day.
	SlotDay       string
	AmountInCents int64 // the batch total, > 0
}

// Denial says why a reservation was not granted. The values are stable and
// low-cardinality, fit for metric labels and reason codes.
type Denial string

// Reasons a reservation is denied.
const (
	// DeniedBatchCount: the client has used all its batch slots for the
	// slot day. Checked first: no batch of any account can go out that day.
	DeniedBatchCount Denial = "batch_count"
	// DeniedAmount: the amount would take the account past its daily
	// money limit on the amount day (including an amount larger than the
	// limit itself).
	DeniedAmount Denial = "amount"
)

// Grant is the outcome of [Budget.Reserve] and [Budget.Move].
type Grant struct {
	// Granted is true when the batch holds the reservation, fresh or from
	// an earlier call (AlreadyHeld).
	Granted bool
	// Denied is the reason when Granted is false.
	Denied Denial
	// AlreadyHeld is true when the batch already held this reservation;
	// nothing was counted again.
	AlreadyHeld bool
	// UsedAmountInCents is the account's reserved amount on the amount day
	// after the call, and AccountLimitInCents its limit.
	UsedAmountInCents   int64
	AccountLimitInCents int64
	// UsedBatches is the rail's reserved batch count on the slot day after
	// the call, and BatchCap the rail's cap (0: none).
	UsedBatches int
	BatchCap    int
}

// Usage is a rail's consumption on a day as Redis knows it.
type Usage struct {
	// Seeded is false when Redis does not know the account's amount that
	// day: a reservation with that amount day would return ErrNotSeeded.
	Seeded bool
	// BatchesSeeded is false when Redis does not know the rail's batch
	// count that day: a reservation with that slot day would return
	// ErrNotSeeded if the rail has a cap (a rail without one counts only
	// our own reservations and needs no seed).
	BatchesSeeded bool
	AmountInCents int64 // the account's reserved amount
	Batches       int   // the rail's reserved batch count
}

// Script results: the first element of the reply.
const (
	codeGranted     = 1
	codeAlreadyHeld = 2
	codeDeniedCount = 3
	codeDeniedAmt   = 4
	codeNotSeeded   = 5
	codeConflict    = 6
	codeServer      = 7
)

// luaBudget holds the helpers of the reservation scripts. A reservation
// record is "<r><amount>:<slotDay>:<accountId>", <r> the rail's field
// prefix ("" for Wompi, else "<rail>/", a rail name starting with a
// letter, where an amount starts with a digit); a day is 10 bytes.
const luaBudget = `
local function parse(held)
  local fp, rest = string.match(held, '^([a-z][a-z0-9_-]*/)(.*)$')
  if not fp then fp, rest = '', held end
  local i = string.find(rest, ':', 1, true)
  return tonumber(string.sub(rest, 1, i - 1)), string.sub(rest, i + 1, i + 10), string.sub(rest, i + 12), fp
end
local function unbook(a, s, amount, acct, fp)
  local f = fp .. 'amt:' .. acct
  local used = tonumber(redis.call('HGET', a, f) or '0')
  if used >= amount then
    redis.call('HINCRBY', a, f, -amount)
  else
    redis.call('HSET', a, f, 0)
  end
  local bf = fp .. 'batches'
  local n = tonumber(redis.call('HGET', s, bf) or '0')
  if n >= 1 then
    redis.call('HINCRBY', s, bf, -1)
  end
end
local function unseeded(a, s, acct, fp, cap)
  local missing = ''
  if redis.call('HEXISTS', a, fp .. 'seeded:' .. acct) == 0 then missing = 'a' end
  if cap > 0 and redis.call('HEXISTS', s, fp .. 'slots-seeded') == 0 then missing = missing .. 's' end
  return missing
end
`

// luaRunID sets server, repl and shifted: the run id and replication id
// of the Redis process running the script and whether a promotion changed
// the latter (redisproc.Lua). The run id alone misses a failback, which
// keeps it; its promotion back gave it a new replication id.
const luaRunID = redisproc.Lua

// luaStamp returns early, with code 7 (codeServer), when the stamp key
// (KEYS[n], Budget.stampKey) names another Redis process than the one
// running the script, or the same process since promoted: the replication
// id the key KEYS[n+1] (Budget.replKey) holds changed by a promotion
// (luaRunID). A missing stamp is written, and so is a missing replication
// id (the previous version wrote none) or one changed without a promotion.
// Its server is the run id of INFO server ("" where INFO is refused or has
// none: miniredis), as the dispatcher's epoch is stamped.
func luaStamp(n int) string {
	stamp, replKey := `KEYS[`+strconv.Itoa(n)+`]`, `KEYS[`+strconv.Itoa(n+1)+`]`
	return luaRunID + `local stamp = redis.call('GET', ` + stamp + `)
if not stamp then
  redis.call('SET', ` + stamp + `, server)
  redis.call('SET', ` + replKey + `, repl)
elseif stamp ~= server then
  return {7, 0, 0, stamp}
else
  local r = redis.call('GET', ` + replKey + `)
  if r ~= repl then
    if r and shifted then return {7, 0, 0, stamp .. '/' .. r} end
    redis.call('SET', ` + replKey + `, repl)
  end
end
`
}

// reserveScript: KEYS[1] amount day's hash, KEYS[2] slot day's hash (the
// same key for an immediate batch); ARGV batchId, accountId, amount,
// accountLimit, batchCap (0: none), slotDay, ttlMs of KEYS[1], ttlMs of
// KEYS[2], the rail's field prefix. Reply {code, usedAmount, usedBatches,
// existingReservation or the unseeded parts ("a": the amount day, "s": the
// slot day)}.
var reserveScript = redis.NewScript(luaBudget + luaStamp(3) + `
local a, s = KEYS[1], KEYS[2]
local batch, acct, fp = ARGV[1], ARGV[2], ARGV[9]
local amount, limit, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local amtField, batchField = fp .. 'amt:' .. acct, fp .. 'batches'
local missing = unseeded(a, s, acct, fp, cap)
if missing ~= '' then
  return {5, 0, 0, missing}
end
local used = tonumber(redis.call('HGET', a, amtField) or '0')
local batches = tonumber(redis.call('HGET', s, batchField) or '0')
local want = fp .. ARGV[3] .. ':' .. ARGV[6] .. ':' .. acct
local held = redis.call('HGET', a, 'res:' .. batch)
if held then
  if held ~= want then
    return {6, used, batches, held}
  end
  return {2, used, batches, held}
end
if cap > 0 and batches + 1 > cap then
  return {3, used, batches, ''}
end
if used + amount > limit then
  return {4, used, batches, ''}
end
used = redis.call('HINCRBY', a, amtField, amount)
batches = redis.call('HINCRBY', s, batchField, 1)
redis.call('HSET', a, 'res:' .. batch, want)
redis.call('PEXPIRE', a, ARGV[7])
redis.call('PEXPIRE', s, ARGV[8])
return {1, used, batches, ''}
`)

// moveScript: KEYS[1] from's amount day, KEYS[2] from's slot day, KEYS[3]
// to's amount day, KEYS[4] to's slot day; ARGV batchId, accountId, amount,
// accountLimit, batchCap (0: none), from's slot day, to's slot day, ttlMs
// of KEYS[3], ttlMs of KEYS[4], the rail's field prefix. Reply as
// reserveScript's, for to.
var moveScript = redis.NewScript(luaBudget + luaStamp(5) + `
local fa, fs, ta, ts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch, acct, fp = ARGV[1], ARGV[2], ARGV[10]
local amount, limit, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local resField, amtField, batchField = 'res:' .. batch, fp .. 'amt:' .. acct, fp .. 'batches'
local missing = unseeded(ta, ts, acct, fp, cap)
if missing ~= '' then
  return {5, 0, 0, missing}
end
local fromVal = fp .. ARGV[3] .. ':' .. ARGV[6] .. ':' .. acct
local toVal = fp .. ARGV[3] .. ':' .. ARGV[7] .. ':' .. acct
local heldFrom = redis.call('HGET', fa, resField)
local heldTo = heldFrom
if ta ~= fa then
  heldTo = redis.call('HGET', ta, resField)
end
local used = tonumber(redis.call('HGET', ta, amtField) or '0')
local batches = tonumber(redis.call('HGET', ts, batchField) or '0')
if heldTo == toVal then
  return {2, used, batches, heldTo}
end
local moving = heldFrom == fromVal
if heldTo and not (ta == fa and moving) then
  return {6, used, batches, heldTo}
end
if heldFrom and not moving then
  return {6, used, batches, heldFrom}
end
local freeAmt, freeSlot = 0, 0
if moving and fa == ta then freeAmt = amount end
if moving and fs == ts then freeSlot = 1 end
if cap > 0 and batches - freeSlot + 1 > cap then
  return {3, used, batches, ''}
end
if used - freeAmt + amount > limit then
  return {4, used, batches, ''}
end
if moving then
  unbook(fa, fs, amount, acct, fp)
  redis.call('HDEL', fa, resField)
end
used = redis.call('HINCRBY', ta, amtField, amount)
batches = redis.call('HINCRBY', ts, batchField, 1)
redis.call('HSET', ta, resField, toVal)
redis.call('PEXPIRE', ta, ARGV[8])
redis.call('PEXPIRE', ts, ARGV[9])
return {1, used, batches, ''}
`)

// releaseScript: KEYS[1] amount day's hash, KEYS[2] the slot day's hash
// the caller expects; ARGV batchId, that slot day. Reply {1, ""} when
// released, {0, ""} when the batch held nothing, {2, recordedSlotDay} when
// the record names another slot day (nothing changed: call again with it).
var releaseScript = redis.NewScript(luaBudget + `
local a, s = KEYS[1], KEYS[2]
local field = 'res:' .. ARGV[1]
local held = redis.call('HGET', a, field)
if not held then
  return {0, ''}
end
local amount, slot, acct, fp = parse(held)
if slot ~= ARGV[2] then
  return {2, slot}
end
unbook(a, s, amount, acct, fp)
redis.call('HDEL', a, field)
return {1, ''}
`)

// seedScript: KEYS[1] day hash; ARGV accountId ("" leaves the amount
// alone), amount, batches (-1 leaves the count alone), ttlMs, the rail's
// field prefix. An account's amount is seeded with at least the rail's
// listed figure (NoteListed), plus, at its first seed, what it holds then
// (batches BookListed booked, which the listed figure leaves out). Reply
// {usedAmount, usedBatches}.
var seedScript = redis.NewScript(`
local h, fp = KEYS[1], ARGV[5]
local batchField = fp .. 'batches'
local used = 0
local batches = tonumber(redis.call('HGET', h, batchField) or '0')
if ARGV[1] ~= '' then
  local amtField = fp .. 'amt:' .. ARGV[1]
  used = tonumber(redis.call('HGET', h, amtField) or '0')
  local given, amount = ARGV[2], tonumber(ARGV[2])
  local listed = redis.call('HGET', h, fp .. 'listed')
  if listed then
    -- Not seeded yet, what the account holds was booked (BookListed):
    -- spend the listed figure does not hold, so it starts at both. One
    -- seeded already had the figure added (noteListedScript).
    local floor = tonumber(listed)
    if redis.call('HEXISTS', h, fp .. 'seeded:' .. ARGV[1]) == 0 then
      floor = floor + used
    end
    if floor > amount then given, amount = string.format('%.0f', floor), floor end
  end
  if amount > used then
    redis.call('HSET', h, amtField, given)
    used = amount
  end
  redis.call('HSET', h, fp .. 'seeded:' .. ARGV[1], '1')
end
local seen = tonumber(ARGV[3])
if seen >= 0 then
  if seen > batches then
    redis.call('HSET', h, batchField, ARGV[3])
    batches = seen
  end
  redis.call('HSET', h, fp .. 'slots-seeded', '1')
end
redis.call('PEXPIRE', h, ARGV[4])
return {used, batches}
`)

// Reserve reserves r's amount against the account's limit on r.Day and one
// batch slot against r.Rail's cap on r.SlotDay, both or neither, in one
// atomic round trip, in r.Rail's budgets.
//
//   - Granted: both counters grew; the batch holds the reservation.
//   - Already held by the same batch (same account, amount and days):
//     Granted and AlreadyHeld, nothing counted again. Safe to call on every
//     redelivery.
//   - Denied: nothing changed; Denied says which limit. The batch count is
//     checked before the amount.
//   - [ErrNotSeeded] (a [*NotSeededError]): Redis does not know the
//     account's amount on r.Day or the rail's batch count on r.SlotDay;
//     seed what it names from the rail's figures and retry.
//   - [ErrReservationConflict]: the batch id holds a different reservation
//     on r.Day (another amount, account or slot day); Release it first.
func (b *Budget) Reserve(ctx context.Context, r Reservation) (Grant, error) {
	if err := r.validate(); err != nil {
		return Grant{}, err
	}
	limit, err := b.accountLimit(r.AccountID)
	if err != nil {
		return Grant{}, err
	}
	res, err := reserveScript.Run(ctx, b.rdb, []string{b.key(r.Day), b.key(r.SlotDay), b.stampKey(), b.replKey()},
		r.BatchID, r.AccountID, r.AmountInCents, limit, b.capOf(r.Rail), r.SlotDay, b.ttlMs(r.Day), b.ttlMs(r.SlotDay),
		fieldPrefix(r.Rail)).Slice()
	if err != nil {
		return Grant{}, fmt.Errorf("ratelimit: reserve batch %s: %w", r.BatchID, err)
	}
	return b.grant("reserve", r, limit, res)
}

// Move moves the batch's reservation from to the days day (amount) and
// slotDay (batch slot), atomically, both or neither: when the new days
// cannot take it (Denied, or an error), the batch still holds from. Use it
// when a batch is posted on a later day than its slot was reserved on. The
// reservation stays in from.Rail's budgets.
//
//   - from held as given: it is released and the new reservation taken, in
//     one step; when a day is the same on both sides, its count is moved,
//     not taken twice.
//   - the batch already holds the new reservation (a repeated Move):
//     Granted and AlreadyHeld.
//   - from not held at all (released, or lost with Redis): Move is a
//     Reserve on the new days.
//   - the batch holds something else on either amount day:
//     [ErrReservationConflict], nothing changed.
//   - [ErrNotSeeded] (a [*NotSeededError]) for the new days, as Reserve.
func (b *Budget) Move(ctx context.Context, from Reservation, day, slotDay string) (Grant, error) {
	to := from
	to.Day, to.SlotDay = day, slotDay
	if err := from.validate(); err != nil {
		return Grant{}, err
	}
	if err := to.validate(); err != nil {
		return Grant{}, err
	}
	limit, err := b.accountLimit(to.AccountID)
	if err != nil {
		return Grant{}, err
	}
	res, err := moveScript.Run(ctx, b.rdb,
		[]string{b.key(from.Day), b.key(from.SlotDay), b.key(to.Day), b.key(to.SlotDay), b.stampKey(), b.replKey()},
		to.BatchID, to.AccountID, to.AmountInCents, limit, b.capOf(to.Rail), from.SlotDay, to.SlotDay,
		b.ttlMs(to.Day), b.ttlMs(to.SlotDay), fieldPrefix(to.Rail)).Slice()
	if err != nil {
		return Grant{}, fmt.Errorf("ratelimit: move batch %s: %w", to.BatchID, err)
	}
	return b.grant("move", to, limit, res)
}

func (b *Budget) accountLimit(accountID string) (int64, error) {
	limit := b.limit(accountID)
	if limit < 0 {
		return 0, fmt.Errorf("%w: daily limit %d of account %s is negative", ErrInvalid, limit, accountID)
	}
	return limit, nil
}

// grant reads a reserveScript or moveScript reply about r.
func (b *Budget) grant(op string, r Reservation, limit int64, res []any) (Grant, error) {
	if len(res) != 4 {
		return Grant{}, fmt.Errorf("ratelimit: %s batch %s: unexpected reply %v", op, r.BatchID, res)
	}
	code, _ := res[0].(int64)
	used, _ := res[1].(int64)
	batches, _ := res[2].(int64)
	extra, _ := res[3].(string)
	g := Grant{UsedAmountInCents: used, UsedBatches: int(batches), AccountLimitInCents: limit, BatchCap: b.capOf(r.Rail)}
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
		ns := &NotSeededError{Rail: railOrWompi(r.Rail), AccountID: r.AccountID}
		if strings.Contains(extra, "a") {
			ns.AmountDay = r.Day
		}
		if strings.Contains(extra, "s") {
			ns.SlotDay = r.SlotDay
		}
		return Grant{}, ns
	case codeServer:
		return Grant{}, fmt.Errorf("%w (stamped by %q)", ErrServerChanged, extra)
	case codeConflict:
		return Grant{}, fmt.Errorf("%w: batch %s holds %q ([rail/]amount:slotDay:account), asked %s%d:%s:%s on %s",
			ErrReservationConflict, r.BatchID, extra, fieldPrefix(r.Rail), r.AmountInCents, r.SlotDay, r.AccountID, r.Day)
	default:
		return Grant{}, fmt.Errorf("ratelimit: %s batch %s: unexpected code %v", op, r.BatchID, res[0])
	}
	return g, nil
}

// Release returns the batch's reservation on r.Day (its amount day): the
// amount to the account it was reserved for and the batch slot to the slot
// day it was reserved on, in the budgets of the rail it was reserved
// through, as recorded, whatever r.Rail, r.AccountID, r.AmountInCents and
// r.SlotDay say (r.SlotDay is a hint that saves a round
// trip; empty means r.Day). released is false when the batch held nothing
// on r.Day (never reserved, already released, moved, or lost with Redis):
// then nothing changes, so Release is safe to repeat. A released batch may
// be reserved again.
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
	slot := r.SlotDay
	if slot == "" {
		slot = r.Day
	}
	if err := validDay(slot); err != nil {
		return false, err
	}
	for range 2 {
		res, err := releaseScript.Run(ctx, b.rdb, []string{b.key(r.Day), b.key(slot)}, r.BatchID, slot).Slice()
		if err != nil {
			return false, fmt.Errorf("ratelimit: release batch %s: %w", r.BatchID, err)
		}
		if len(res) != 2 {
			return false, fmt.Errorf("ratelimit: release batch %s: unexpected reply %v", r.BatchID, res)
		}
		code, _ := res[0].(int64)
		recorded, _ := res[1].(string)
		switch code {
		case 0:
			return false, nil
		case 1:
			return true, nil
		case 2: // the record names another slot day: release there
			if err := validDay(recorded); err != nil {
				return false, fmt.Errorf("ratelimit: release batch %s: recorded slot day: %w", r.BatchID, err)
			}
			slot = recorded
			continue
		}
		return false, fmt.Errorf("ratelimit: release batch %s: unexpected code %v", r.BatchID, res[0])
	}
	return false, fmt.Errorf("ratelimit: release batch %s: its recorded slot day keeps changing", r.BatchID)
}

// Holds reports whether batch r.BatchID still holds a reservation on
// r.Day (any amount, slot day or account). It is false once the day's
// budget was lost (all of Redis, or on a Redis Cluster the budgets'
// master alone) or the reservation was released or moved.
func (b *Budget) Holds(ctx context.Context, r Reservation) (bool, error) {
	if err := validDay(r.Day); err != nil {
		return false, err
	}
	if r.BatchID == "" {
		return false, fmt.Errorf("%w: empty batch id", ErrInvalid)
	}
	ok, err := b.rdb.HExists(ctx, b.key(r.Day), "res:"+r.BatchID).Result()
	if err != nil {
		return false, fmt.Errorf("ratelimit: holds batch %s: %w", r.BatchID, err)
	}
	return ok, nil
}

// Seed records what the rail reports as already consumed on day, by the
// account (amount) and by the client (batch count: the batches sent that
// day), and marks both as known, in the rail's budgets ("" is Wompi). It is
// SeedAmount and SeedBatches in one atomic step.
func (b *Budget) Seed(ctx context.Context, r rail.Name, day, accountID string, consumedAmountInCents int64, consumedBatches int) (Usage, error) {
	if err := validID("account id", accountID); err != nil {
		return Usage{}, err
	}
	if consumedAmountInCents < 0 || consumedBatches < 0 {
		return Usage{}, fmt.Errorf("%w: negative consumption %d cents, %d batches", ErrInvalid, consumedAmountInCents, consumedBatches)
	}
	u, err := b.seed(ctx, r, day, accountID, consumedAmountInCents, consumedBatches)
	u.Seeded, u.BatchesSeeded = err == nil, err == nil
	return u, err
}

// SeedAmount records the account's consumed amount on day through the rail
// ("" is Wompi) and marks it known, so reservations with that amount day
// work. The counter becomes
// max(current, given) in one atomic step, so reservations made
// concurrently, or since Wompi's answer was computed, are never erased;
// seeding can only raise counters. Call it when Reserve returns
// ErrNotSeeded naming the amount day, and whenever a fresh figure is at
// hand. The returned Usage has the day's batch count as Redis holds it.
//
// Reservations held before Redis lost its data are gone: Release of them is
// a no-op and Reserve of such a batch counts it again.
func (b *Budget) SeedAmount(ctx context.Context, r rail.Name, day, accountID string, consumedAmountInCents int64) (Usage, error) {
	if err := validID("account id", accountID); err != nil {
		return Usage{}, err
	}
	if consumedAmountInCents < 0 {
		return Usage{}, fmt.Errorf("%w: negative consumption %d cents", ErrInvalid, consumedAmountInCents)
	}
	u, err := b.seed(ctx, r, day, accountID, consumedAmountInCents, -1)
	u.Seeded = err == nil
	return u, err
}

// SeedBatches records the number of batches the client has sent through
// the rail ("" is Wompi) on day (the slot day; scheduled batches count on
// the day they were sent) and marks it known, so reservations with that
// slot day work. As SeedAmount,
// it keeps the larger of the given count and what Redis holds. The
// returned Usage carries no account figures.
func (b *Budget) SeedBatches(ctx context.Context, r rail.Name, day string, consumedBatches int) (Usage, error) {
	if consumedBatches < 0 {
		return Usage{}, fmt.Errorf("%w: negative consumption %d batches", ErrInvalid, consumedBatches)
	}
	u, err := b.seed(ctx, r, day, "", 0, consumedBatches)
	u.BatchesSeeded = err == nil
	u.AmountInCents = 0
	return u, err
}

func (b *Budget) seed(ctx context.Context, r rail.Name, day, accountID string, amount int64, batches int) (Usage, error) {
	if err := validDay(day); err != nil {
		return Usage{}, err
	}
	if err := validRail(r); err != nil {
		return Usage{}, err
	}
	res, err := seedScript.Run(ctx, b.rdb, []string{b.key(day)}, accountID, amount, batches, b.ttlMs(day), fieldPrefix(r)).Int64Slice()
	if err != nil {
		return Usage{}, fmt.Errorf("ratelimit: seed day %s: %w", day, err)
	}
	if len(res) != 2 {
		return Usage{}, fmt.Errorf("ratelimit: seed day %s: unexpected reply %v", day, res)
	}
	return Usage{AmountInCents: res[0], Batches: int(res[1])}, nil
}

// bookScript: KEYS[1] amount day, KEYS[2] slot day; ARGV batchId,
// accountId, amount, slot day, ttlMs of KEYS[1], ttlMs of KEYS[2], the
// rail's field prefix. Reply 1 when booked, 0 when the batch's reservation
// is there already.
var bookScript = redis.NewScript(`
local field, fp = 'res:' .. ARGV[1], ARGV[7]
if redis.call('HEXISTS', KEYS[1], field) == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], fp .. 'amt:' .. ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[2], fp .. 'batches', 1)
redis.call('HSET', KEYS[1], field, fp .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
`)

// BookListed counts r, a batch its rail lists as created (paid, or to be
// paid on r.Day), as reserved, unless its reservation is there already:
// one a Redis loss took with the last writes while the day's budget
// stayed (a restart from an older snapshot, a failover). It is then
// counted as Reserve would have counted it, and a reservation of the same
// batch later finds it held. It reports whether it booked r.
func (b *Budget) BookListed(ctx context.Context, r Reservation) (bool, error) {
	if err := validDay(r.Day); err != nil {
		return false, err
	}
	slot := r.SlotDay
	if slot == "" {
		slot = r.Day
	}
	if err := validDay(slot); err != nil {
		return false, err
	}
	if err := validRail(r.Rail); err != nil {
		return false, err
	}
	if err := validID("batch id", r.BatchID); err != nil {
		return false, err
	}
	if err := validID("account id", r.AccountID); err != nil {
		return false, err
	}
	if r.AmountInCents < 0 {
		return false, fmt.Errorf("%w: negative amount %d cents", ErrInvalid, r.AmountInCents)
	}
	n, err := bookScript.Run(ctx, b.rdb, []string{b.key(r.Day), b.key(slot)}, r.BatchID, r.AccountID, r.AmountInCents,
		slot, b.ttlMs(r.Day), b.ttlMs(slot), fieldPrefix(r.Rail)).Int64()
	if err != nil {
		return false, fmt.Errorf("ratelimit: book listed batch %s: %w", r.BatchID, err)
	}
	return n == 1, nil
}

// MaxListedInCents bounds NoteListed's figure: Redis's Lua counts in
// doubles, exact to 2^53; a day's spend above this (10^13 currency units)
// is noted as this, which still blocks any account limit below it.
const MaxListedInCents = 1_000_000_000_000_000

// noteListedScript: KEYS[1] day hash; ARGV cents, ttlMs, the rail's field
// prefix. Reply: the listed figure after the call.
var noteListedScript = redis.NewScript(`
local h, fp = KEYS[1], ARGV[3]
local new = tonumber(ARGV[1])
local cur = redis.call('HGET', h, fp .. 'listed')
local old = tonumber(cur or '0')
if cur and new <= old then
  return old
end
redis.call('HSET', h, fp .. 'listed', ARGV[1])
local seeded = fp .. 'seeded:'
for _, k in ipairs(redis.call('HKEYS', h)) do
  if string.sub(k, 1, #seeded) == seeded then
    redis.call('HINCRBY', h, fp .. 'amt:' .. string.sub(k, #seeded + 1), new - old)
  end
end
redis.call('PEXPIRE', h, ARGV[2])
return new
`)

// NoteListed records, in the rail's budgets for day, cents the rail's own
// listing shows as paid on day that no account's counter may hold: what a
// recovery after a Redis loss found paid before the loss. The rail names
// no account of ours, so the figure counts against every account: an
// account seeded later on day starts at it (seedScript), and one already
// seeded (by a batch that reserved in the moments between the loss and
// the recovery) has the figure's increase added. The figure only grows.
// Once noted, even at 0, the day is listed ([Budget.Listed]).
// The counters then err on too much, never too little: another account's
// spend counts too, and so do payees the recovery listed that a counter
// already held (a loss of part of the keys).
func (b *Budget) NoteListed(ctx context.Context, r rail.Name, day string, cents int64) (int64, error) {
	if err := validDay(day); err != nil {
		return 0, err
	}
	if err := validRail(r); err != nil {
		return 0, err
	}
	if cents < 0 {
		return 0, fmt.Errorf("%w: negative listed amount %d cents", ErrInvalid, cents)
	}
	cents = min(cents, MaxListedInCents)
	n, err := noteListedScript.Run(ctx, b.rdb, []string{b.key(day)}, cents, b.ttlMs(day), fieldPrefix(r)).Int64()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: note listed day %s: %w", day, err)
	}
	return n, nil
}

// Listed reports whether the rail's day has a listed figure
// ([Budget.NoteListed]), and the figure.
func (b *Budget) Listed(ctx context.Context, r rail.Name, day string) (cents int64, ok bool, err error) {
	if err := validDay(day); err != nil {
		return 0, false, err
	}
	if err := validRail(r); err != nil {
		return 0, false, err
	}
	v, err := b.rdb.HGet(ctx, b.key(day), fieldPrefix(r)+"listed").Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("ratelimit: listed day %s: %w", day, err)
	}
	if cents, err = strconv.ParseInt(v, 10, 64); err != nil {
		return 0, false, fmt.Errorf("ratelimit: listed day %s: %q: %w", day, v, err)
	}
	return cents, true, nil
}

// Usage returns, in the rail's budgets ("" is Wompi), the day's reserved
// amount of the account, the rail's reserved batch count, and whether each
// is seeded.
func (b *Budget) Usage(ctx context.Context, r rail.Name, day, accountID string) (Usage, error) {
	if err := validDay(day); err != nil {
		return Usage{}, err
	}
	if err := validRail(r); err != nil {
		return Usage{}, err
	}
	if err := validID("account id", accountID); err != nil {
		return Usage{}, err
	}
	fp := fieldPrefix(r)
	vals, err := b.rdb.HMGet(ctx, b.key(day), fp+"seeded:"+accountID, fp+"amt:"+accountID, fp+"batches", fp+"slots-seeded").Result()
	if err != nil {
		return Usage{}, fmt.Errorf("ratelimit: usage day %s account %s: %w", day, accountID, err)
	}
	u := Usage{Seeded: vals[0] != nil, BatchesSeeded: vals[3] != nil}
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

// BatchCap returns the rail's daily batch cap ("" is Wompi); 0 is none.
func (b *Budget) BatchCap(r rail.Name) int { return b.capOf(r) }

func (b *Budget) capOf(r rail.Name) int {
	if r == "" || r == rail.Wompi {
		return b.cap
	}
	return b.caps[r]
}

// fieldPrefix is the prefix of r's fields in a day's hash: "" for Wompi,
// whose fields kept their names from before rails, else "<rail>/".
func fieldPrefix(r rail.Name) string {
	if r == "" || r == rail.Wompi {
		return ""
	}
	return string(r) + "/"
}

func railOrWompi(r rail.Name) rail.Name {
	if r == "" {
		return rail.Wompi
	}
	return r
}

// validRail accepts "" (Wompi) and the rails of the contract: a field
// prefix must never be made of an arbitrary string.
func validRail(r rail.Name) error {
	if r != "" && !r.Valid() {
		return fmt.Errorf("%w: unknown rail %q", ErrInvalid, r)
	}
	return nil
}

// Key returns the Redis key of a day's budget, for inspection and tests.
func (b *Budget) Key(day string) string { return b.key(day) }

func (b *Budget) key(day string) string { return b.prefix + "{budget}:" + day }

// stampKey names the Redis process that holds the budgets, as last known
// complete (Stamp): in the {budget} slot, so a failover of that slot's
// master alone (a Redis Cluster) is noticed by the next reservation.
func (b *Budget) stampKey() string { return b.prefix + "{budget}:server" }

// replKey holds the replication id of the process stampKey names, as last
// known (luaStamp): a key of its own, so that a dispatcher of the previous
// version, which compares stampKey with the run id alone, still reads it.
func (b *Budget) replKey() string { return b.prefix + "{budget}:repl" }

// serverScript: KEYS the stamp key (its slot routes the script to the
// budgets' master). The run id of the Redis process running it, "/", and
// its replication id.
var serverScript = redis.NewScript(luaRunID + `
return server .. '/' .. repl
`)

// Server names the Redis process that holds the budgets now, and its
// replication id ("/" alone where INFO is refused), for [Budget.Stamp]:
// read it before counting the rails' listings into the budgets.
func (b *Budget) Server(ctx context.Context) (string, error) {
	s, err := serverScript.Run(ctx, b.rdb, []string{b.stampKey()}).Text()
	if err != nil {
		return "", fmt.Errorf("ratelimit: read the budgets' Redis process: %w", err)
	}
	return s, nil
}

// stampScript: KEYS the stamp key, the replication id's key; ARGV the
// process the caller read before its writes (Budget.Server: run id "/"
// replication id). It names the Redis process running it, if that is
// still the one and was not promoted since (its replication id changed by
// a promotion): 0 otherwise.
var stampScript = redis.NewScript(luaRunID + `
local run, was = string.match(ARGV[1], '^([^/]*)/(.*)$')
if server ~= run then return 0 end
if repl ~= was and shifted then return 0 end
redis.call('SET', KEYS[1], server)
redis.call('SET', KEYS[2], repl)
return 1
`)

// Stamp names server, read by [Budget.Server] before the rails' listings
// were counted into the budgets (after [ErrServerChanged], or a Redis
// loss), as the holder of the budgets. When the process changed since (a
// failover in between may have lost those writes), nothing is stamped
// and it returns [ErrServerChanged]: count again.
func (b *Budget) Stamp(ctx context.Context, server string) error {
	ok, err := stampScript.Run(ctx, b.rdb, []string{b.stampKey(), b.replKey()}, server).Int()
	if err != nil {
		return fmt.Errorf("ratelimit: stamp the budgets: %w", err)
	}
	if ok != 1 {
		return fmt.Errorf("%w (while the rails' listings were counted into them)", ErrServerChanged)
	}
	return nil
}

// bogota is America/Bogota: UTC-5 all year.
var bogota = time.FixedZone("America/Bogota", -5*60*60)

// ttlMs is the TTL of day's hash after a change: TTL, counted from the end
// of the day when it is still ahead (by the wall clock, as Redis expires
// keys), so a budget reserved days before its day lasts through it. The
// day's end is Bogota's, the latest of the rails' zones (Sao Paulo's day
// ends two hours earlier), so it covers every rail's day.
func (b *Budget) ttlMs(day string) int64 {
	ttl := b.ttl
	if t, err := time.ParseInLocation(time.DateOnly, day, bogota); err == nil {
		// A day centuries ahead (a scheduled batch's dispersion day)
		// would overflow the sum into a negative PEXPIRE, which deletes
		// the day's hash as soon as it is written: the sum saturates.
		if ahead := time.Until(t.AddDate(0, 0, 1)); ahead > math.MaxInt64-ttl {
			ttl = math.MaxInt64
		} else if ahead > 0 {
			ttl += ahead
		}
	}
	return ttl.Milliseconds()
}

func (r Reservation) validate() error {
	if err := validDay(r.Day); err != nil {
		return err
	}
	if err := validRail(r.Rail); err != nil {
		return err
	}
	if err := validDay(r.SlotDay); err != nil {
		return fmt.Errorf("slot day: %w", err)
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
