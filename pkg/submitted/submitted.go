package submitted

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/redisproc"
)

// Transaction maps one Wompi transaction to our request.
type Transaction struct {
	TransactionID   string
	RequestID       string
	BatchID         string
	PayoutID        string
	AmountInCents   int64
	OriginAccountID string
}

// Payout describes one submitted batch (one Wompi payout).
type Payout struct {
	PayoutID           string
	BatchID            string
	OriginAccountID    string
	PaymentType        string
	TotalAmountInCents int64
	TransactionCount   int
	SubmittedAt        time.Time
	// PollDigest is the tracker's digest of the transaction statuses its
	// last complete poll of the payout emitted: a poll that reads the same
	// statuses again has nothing to emit.
	PollDigest string
}

// DefaultPrefix is the key prefix the dispatcher and the tracker share by
// default (REDIS_PREFIX); they must use the same one.
const DefaultPrefix = "payouts:"

// Store reads and writes the hand-off.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// DefaultTTL keeps a mapping for 14 days: longer than any settlement (ACH
// takes up to a day) plus scheduled dispersion windows.
const DefaultTTL = 14 * 24 * time.Hour

// New returns a store; prefix namespaces the keys (tests give each their
// own), ttl of 0 means DefaultTTL.
func New(rdb redis.UniversalClient, prefix string, ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Store{rdb: rdb, prefix: prefix, ttl: ttl}
}

func (s *Store) payoutKey(id string) string { return s.prefix + "payout:{" + id + "}" }
func (s *Store) pollKey() string            { return s.prefix + "{poll}" }
func (s *Store) readyKey() string           { return s.prefix + "{poll}:ready" }

// txField is the payout hash's field of one transaction; its value is
// "<amountInCents>|<requestId>" (split at the first '|', so any requestId
// is kept whole).
func txField(transactionID string) string { return "t:" + transactionID }

// A payout of more than bucketsFrom transactions keeps their mapping in
// buckets instead: nBuckets fields "b:<n>" at most, each holding the
// transactions whose id hashes to n (bucketOf), one after another as
//
//	<len(transactionId)>:<transactionId><len(value)>:<value>
//
// with value as a txField's. Redis stores a hash field about as dearly as
// a key, and a Wompi payout has thousands of transactions: a few dozen
// fields cost it a fraction of what one per transaction did (see
// docs/performance.md), and a lookup still reads one field, in the same
// HMGET. Lookup reads both layouts: payouts recorded by an earlier version,
// and single payouts, keep one field per transaction. A tracker of an
// earlier version finds no mapping for a bucketed payout and asks the
// provider instead, as after a Redis loss: upgrade trackers first.
const (
	bucketsFrom = 128
	nBuckets    = 64
)

// bucketOf is the bucket of a transaction id: FNV-1a (32 bits) modulo
// nBuckets. It is part of the stored layout: never change it.
func bucketOf(transactionID string) int {
	h := uint32(2166136261)
	for i := 0; i < len(transactionID); i++ {
		h ^= uint32(transactionID[i])
		h *= 16777619
	}
	return int(h % nBuckets)
}

// bucketField is the payout hash's field of bucket n.
func bucketField(n int) string { return "b:" + strconv.Itoa(n) }

// appendEntry appends one transaction's entry to a bucket's value.
func appendEntry(dst []byte, transactionID string, amountInCents int64, requestID string) []byte {
	dst = strconv.AppendInt(dst, int64(len(transactionID)), 10)
	dst = append(dst, ':')
	dst = append(dst, transactionID...)
	var num [20]byte
	amount := strconv.AppendInt(num[:0], amountInCents, 10)
	dst = strconv.AppendInt(dst, int64(len(amount)+1+len(requestID)), 10)
	dst = append(dst, ':')
	dst = append(dst, amount...)
	dst = append(dst, '|')
	return append(dst, requestID...)
}

// findEntry returns the value of transactionID's entry in a bucket's value
// (the last one, as a field written twice keeps the last), and false when
// there is none or the bucket does not read as entries (then the mapping is
// unknown, and the tracker asks the provider).
func findEntry(bucket, transactionID string) (string, bool) {
	var found string
	ok := false
	for rest := bucket; rest != ""; {
		id, next, good := cutLen(rest)
		if !good {
			return "", false
		}
		val, after, good := cutLen(next)
		if !good {
			return "", false
		}
		if id == transactionID {
			found, ok = val, true
		}
		rest = after
	}
	return found, ok
}

// cutLen reads "<n>:" and the n bytes after it from s.
func cutLen(s string) (field, rest string, ok bool) {
	digits, after, found := strings.Cut(s, ":")
	if !found || digits == "" || len(digits) > 9 || strings.TrimLeft(digits, "0123456789") != "" {
		return "", "", false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n > len(after) {
		return "", "", false
	}
	return after[:n], after[n:], true
}

// payoutFields are the payout hash's fixed fields, in Payout's order.
var payoutFields = []string{"batchId", "originAccountId", "paymentType", "totalAmountInCents", "transactionCount", "submittedAt"}

// Record stores a submitted payout with the mapping of each of its
// transactions in one hash, and schedules its first poll at firstPoll: three
// commands in one pipelined round trip, whatever the number of transactions.
func (s *Store) Record(ctx context.Context, p Payout, txs []Transaction, firstPoll time.Time) error {
	return s.RecordMany(ctx, []Payout{p}, [][]Transaction{txs}, firstPoll)
}

// RecordMany is Record for many payouts (ps[i] with txs[i]) in one
// pipelined round trip: a single-payout rail's batch hands off one payout
// per payee. The pipeline writes every payout's hash (HSET, EXPIRE), then
// one ZADD NX schedules them all at firstPoll (a payout already scheduled
// keeps its time). One ZADD per call rather than one per payout:
// BenchmarkRecordMany measured about 1 µs less Redis CPU and 1 µs less of
// the caller's per payout of a single-payout batch.
func (s *Store) RecordMany(ctx context.Context, ps []Payout, txs [][]Transaction, firstPoll time.Time) error {
	if len(ps) != len(txs) {
		return fmt.Errorf("submitted: %d payouts, %d transaction lists", len(ps), len(txs))
	}
	if len(ps) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	var buf []byte
	due := make([]redis.Z, len(ps))
	score := float64(firstPoll.UnixMilli())
	for i, p := range ps {
		due[i] = redis.Z{Score: score, Member: p.PayoutID}
		pk := s.payoutKey(p.PayoutID)
		args := make([]any, 0, 12+2*len(txs[i]))
		args = append(args, "batchId", p.BatchID, "originAccountId", p.OriginAccountID, "paymentType", p.PaymentType,
			"totalAmountInCents", p.TotalAmountInCents, "transactionCount", p.TransactionCount, "submittedAt", p.SubmittedAt.UnixMilli())
		if len(txs[i]) > bucketsFrom {
			appendBuckets.Eval(ctx, pipe, []string{pk}, bucketArgs(txs[i])...)
		} else {
			for _, t := range txs[i] {
				buf = strconv.AppendInt(buf[:0], t.AmountInCents, 10)
				buf = append(buf, '|')
				buf = append(buf, t.RequestID...)
				args = append(args, txField(t.TransactionID), string(buf))
			}
		}
		pipe.HSet(ctx, pk, args...)
		pipe.Expire(ctx, pk, s.ttl)
	}
	pipe.ZAddNX(ctx, s.pollKey(), due...)
	_, err := pipe.Exec(ctx)
	return err
}

// appendBuckets appends each bucket's new entries (ARGV: field, entries,
// ...) to what the payout's hash holds under that field: a payout recorded
// again (a batch finished again after a crash, with a listing that came
// back shorter) keeps the mappings of the first recording, as fields of
// one transaction each are kept by HSET, and the later entry of an id
// wins (findEntry). One key, so one Cluster slot.
var appendBuckets = redis.NewScript(`
for i = 1, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    redis.call('HSET', KEYS[1], ARGV[i], old .. ARGV[i + 1])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0
`)

// bucketArgs are appendBuckets' arguments for txs (bucketsFrom).
func bucketArgs(txs []Transaction) []any {
	var buckets [nBuckets][]byte
	for _, t := range txs {
		n := bucketOf(t.TransactionID)
		buckets[n] = appendEntry(buckets[n], t.TransactionID, t.AmountInCents, t.RequestID)
	}
	var args []any
	for n, b := range buckets {
		if b != nil {
			args = append(args, bucketField(n), b)
		}
	}
	return args
}

// Lookup returns the request that Wompi transaction transactionID of payout
// payoutID pays, in one round trip; ok is false when the mapping is unknown
// (never stored, expired, or Redis lost it).
func (s *Store) Lookup(ctx context.Context, payoutID, transactionID string) (t Transaction, ok bool, err error) {
	v, err := s.rdb.HMGet(ctx, s.payoutKey(payoutID), txField(transactionID), bucketField(bucketOf(transactionID)),
		"batchId", "originAccountId").Result()
	if err != nil || len(v) != 4 {
		return Transaction{}, false, err
	}
	val, _ := v[0].(string)
	bucket, _ := v[1].(string)
	if inBucket, found := findEntry(bucket, transactionID); found {
		// Both layouts hold it (recorded twice, once small, once large):
		// they must agree, else the provider is asked.
		if val != "" && val != inBucket {
			return Transaction{}, false, nil
		}
		val = inBucket
	}
	amount, requestID, found := strings.Cut(val, "|")
	if !found || requestID == "" {
		return Transaction{}, false, nil
	}
	cents, _ := strconv.ParseInt(amount, 10, 64)
	batchID, _ := v[2].(string)
	origin, _ := v[3].(string)
	return Transaction{TransactionID: transactionID, RequestID: requestID, BatchID: batchID, PayoutID: payoutID,
		AmountInCents: cents, OriginAccountID: origin}, true, nil
}

// Payout returns what the dispatcher recorded about a payout.
func (s *Store) Payout(ctx context.Context, payoutID string) (p Payout, ok bool, err error) {
	fields := append(payoutFields[:len(payoutFields):len(payoutFields)], "pollDigest")
	v, err := s.rdb.HMGet(ctx, s.payoutKey(payoutID), fields...).Result()
	if err != nil || len(v) != len(fields) {
		return Payout{}, false, err
	}
	str := func(i int) string { x, _ := v[i].(string); return x }
	if str(0) == "" {
		return Payout{}, false, nil
	}
	total, _ := strconv.ParseInt(str(3), 10, 64)
	n, _ := strconv.Atoi(str(4))
	at, _ := strconv.ParseInt(str(5), 10, 64)
	return Payout{PayoutID: payoutID, BatchID: str(0), OriginAccountID: str(1), PaymentType: str(2),
		TotalAmountInCents: total, TransactionCount: n, SubmittedAt: time.UnixMilli(at), PollDigest: str(6)}, true, nil
}

// SetPollDigest records the digest of the transaction statuses the last
// complete poll of a payout emitted (see Payout.PollDigest).
func (s *Store) SetPollDigest(ctx context.Context, payoutID, digest string) error {
	pk := s.payoutKey(payoutID)
	pipe := s.rdb.Pipeline()
	pipe.HSet(ctx, pk, "pollDigest", digest)
	pipe.Expire(ctx, pk, s.ttl)
	_, err := pipe.Exec(ctx)
	return err
}

// claimDue atomically takes up to ARGV[3] payouts whose poll time is due
// (score <= now) and pushes each one's score to now + lease, so that no
// other replica polls it until the lease passes or Reschedule moves it.
var claimDue = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, id)
end
return due
`)

// ClaimDue returns up to max payouts due for a poll at now, leased to the
// caller for lease: replicas share the polling and never poll one payout at
// the same time.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, max int) ([]string, error) {
	res, err := claimDue.Run(ctx, s.rdb, []string{s.pollKey()}, now.UnixMilli(), lease.Milliseconds(), max).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return res, err
}

// Reschedule sets a payout's next poll time (XX: only if still scheduled,
// so a payout another replica finished is not brought back).
func (s *Store) Reschedule(ctx context.Context, payoutID string, next time.Time) error {
	return s.rdb.ZAddXX(ctx, s.pollKey(), redis.Z{Score: float64(next.UnixMilli()), Member: payoutID}).Err()
}

// Schedule adds a payout to the polling schedule if it is not there.
func (s *Store) Schedule(ctx context.Context, payoutID string, next time.Time) error {
	return s.rdb.ZAddNX(ctx, s.pollKey(), redis.Z{Score: float64(next.UnixMilli()), Member: payoutID}).Err()
}

// Done removes a payout that reached a final status from the schedule.
func (s *Store) Done(ctx context.Context, payoutID string) error {
	return s.rdb.ZRem(ctx, s.pollKey(), payoutID).Err()
}

// Scheduled returns how many payouts are on the polling schedule.
func (s *Store) Scheduled(ctx context.Context) (int64, error) {
	return s.rdb.ZCard(ctx, s.pollKey()).Result()
}

// luaRunID sets server, repl and shifted: the run id and replication id
// of the Redis process running the script and whether a promotion changed
// the latter (redisproc.Lua).
//
// A stamp is "<replication id>:<run id>", or "<run id>" alone as a version
// before the replication id wrote it (and as this one writes it where the
// replication id is unreadable). Every value that carries a stamp ends
// with ":" and the stamp, and earlier versions read the run id after the
// last ":": they still read it. sameProcess(v) reports whether the stamp
// that value v ends with names the process running the script with no
// promotion since: the same run id, and the same replication id, or none
// recorded, or another one with no second id set (a benign change). It
// also returns the stamp for this process (stampNow) and whether v's
// differs from it.
const luaRunID = redisproc.Lua + `local stampNow = server
if repl ~= '' then stampNow = repl .. ':' .. server end
local function sameProcess(v)
  local _, _, r, s = string.find(v, ':(%x*):(%x*)$')
  if not s then
    _, _, s = string.find(v, ':(%x*)$')
    r = nil
  end
  if not s or s ~= server then return false, false end
  local differs = repl ~= '' and r ~= repl
  if not r or r == '' or repl == '' or r == repl then return true, differs end
  return not shifted, differs
end
`

// readyScript: KEYS ready marker. 1 when the marker exists and names the
// Redis process running the script with no promotion since (sameProcess),
// or names none while INFO is refused. A marker without the replication
// id, or with one changed without a promotion, is stamped again with the
// current one.
var readyScript = redis.NewScript(luaRunID + `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local same, differs = sameProcess(v)
if not same then return 0 end
if differs then
  local at = string.match(v, '^[^:]*')
  redis.call('SET', KEYS[1], at .. ':' .. stampNow)
end
return 1
`)

// markReadyScript: KEYS ready marker; ARGV wall clock (ms). The marker
// names the Redis process that holds the schedule.
var markReadyScript = redis.NewScript(luaRunID + `
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. stampNow)
return 1
`)

// Ready reports whether the polling schedule is known to be complete. It is
// false on a fresh or flushed Redis, and on one whose process changed since
// the schedule was marked (a restart from an older snapshot, a failover to
// a replica that missed the last writes, a failback to the process that
// marked it, which lost them syncing from the replica promoted meanwhile:
// the schedule entries and the hand-offs written after it are gone, the
// marker is not): the tracker must then rebuild it from the rails and call
// MarkReady. A marker of a version that did not name the process counts as
// missing (one rebuild).
func (s *Store) Ready(ctx context.Context) (bool, error) {
	n, err := readyScript.Run(ctx, s.rdb, []string{s.readyKey()}).Int()
	return n == 1, err
}

// MarkReady records that the polling schedule is complete, on this Redis
// process.
func (s *Store) MarkReady(ctx context.Context) error {
	return markReadyScript.Run(ctx, s.rdb, []string{s.readyKey()}, time.Now().UnixMilli()).Err()
}

func (s *Store) rebuildKey() string { return s.prefix + "{poll}:rebuild" }

// beginRebuildScript: KEYS the rebuild key; ARGV token, TTL (ms). It
// answers the generation of the rebuilds under way: the value of the
// rebuild key, written when missing (or written on another Redis process,
// or before a promotion of this one: a failover or a failback since:
// sameProcess) as the token and the stamp of the Redis process that holds
// the schedule. Rebuilds that begin while another runs share its
// generation (a benign change of the replication id keeps it: rewriting
// it would fail the rebuilds that hold it).
var beginRebuildScript = redis.NewScript(luaRunID + `
local v = redis.call('GET', KEYS[1])
if not v or not sameProcess(v) then
  v = ARGV[1] .. ':' .. stampNow
  redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
end
return v
`)

// markReadyAfterScript: KEYS ready marker, rebuild key, unlisted rails;
// ARGV wall clock (ms), the rebuild's generation, "1" for a rebuild that
// listed Wompi (a whole one), the number n of rails it did not list, those
// n rails, then the rails it listed. It marks the schedule ready only if
// the rebuild key still holds the generation, written on the process
// running the script with no promotion since (sameProcess), and then
// clears the rebuild key. Where the marker was not standing (no marker, or
// another process's), the unlisted set becomes the rebuild's; a rebuild of
// some rails alone then marks nothing. The rails listed leave the set.
var markReadyAfterScript = redis.NewScript(luaRunID + `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if not sameProcess(ARGV[2]) then return 0 end
local old = redis.call('GET', KEYS[1])
local standing = old and sameProcess(old)
if not standing then
  if ARGV[3] ~= '1' then return 0 end
  redis.call('DEL', KEYS[3])
  for i = 5, 4 + tonumber(ARGV[4]) do redis.call('SADD', KEYS[3], ARGV[i]) end
end
for i = 5 + tonumber(ARGV[4]), #ARGV do redis.call('SREM', KEYS[3], ARGV[i]) end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. stampNow)
redis.call('DEL', KEYS[2])
return 1
`)

// BeginRebuild records that a rebuild of the schedule begins, on this Redis
// process, and returns its generation for MarkReadyAfter (token names it
// when no other rebuild is under way; it lasts at most ttl). Call it before
// the rails are listed.
func (s *Store) BeginRebuild(ctx context.Context, token string, ttl time.Duration) (string, error) {
	return beginRebuildScript.Run(ctx, s.rdb, []string{s.rebuildKey()}, token, ttl.Milliseconds()).Text()
}

// MarkReadyAfter is MarkReady for a rebuild that BeginRebuild began in
// generation gen: it marks the schedule ready only if Redis kept what was
// written since that rebuild began (no flush, no restart, no failover to
// another process or failback to this one in between), and reports
// whether it did. A Redis that lost data during the rebuild lost the
// payouts put back before the loss: the schedule is not complete and must
// be rebuilt again. Of rebuilds running at once, the first to end marks
// it.
//
// MarkReadyAfter marks a rebuild that listed every rail (no single-payout
// rail left unlisted); MarkRailsReadyAfter one that some rails' credentials
// were missing from.
func (s *Store) MarkReadyAfter(ctx context.Context, gen string) (bool, error) {
	return s.MarkRailsReadyAfter(ctx, gen, true, nil, nil)
}

func (s *Store) unlistedKey() string { return s.prefix + "{poll}:unlisted" }

// MarkRailsReadyAfter is MarkReadyAfter for a rebuild that listed the
// single-payout rails listed and not those of unlisted (a tracker without
// their credentials), and Wompi where whole. The schedule of an unlisted
// rail stays incomplete (UnlistedRails) until a replica that has the rail
// lists it (a rebuild of that rail alone, not whole, which marks nothing
// unless the schedule was marked ready on this Redis process since the
// last loss). A rail listed by one rebuild and not by a later one while
// the marker stands stays listed.
func (s *Store) MarkRailsReadyAfter(ctx context.Context, gen string, whole bool, listed, unlisted []string) (bool, error) {
	args := []any{time.Now().UnixMilli(), gen, "0", len(unlisted)}
	if whole {
		args[2] = "1"
	}
	for _, r := range unlisted {
		args = append(args, r)
	}
	for _, r := range listed {
		args = append(args, r)
	}
	n, err := markReadyAfterScript.Run(ctx, s.rdb, []string{s.readyKey(), s.rebuildKey(), s.unlistedKey()}, args...).Int()
	return n == 1, err
}

// UnlistedRails returns the single-payout rails the last rebuild of the
// schedule could not list (the tracker that ran it had no credentials for
// them) and no rebuild has listed since: their payouts handed off before
// the loss are not on the schedule. A replica that has one lists it.
func (s *Store) UnlistedRails(ctx context.Context) ([]string, error) {
	return s.rdb.SMembers(ctx, s.unlistedKey()).Result()
}

// Open returns the ids of the payouts on the polling schedule: submitted,
// and not yet seen final by the tracker. Read-only (for operators:
// cmd/payoutsctl).
func (s *Store) Open(ctx context.Context) ([]string, error) {
	return s.rdb.ZRange(ctx, s.pollKey(), 0, -1).Result()
}
