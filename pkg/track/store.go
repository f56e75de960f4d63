package track

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/redisproc"
)

// kind says which life a status key follows: a request's (payout.Status) or
// a batch's (payout.BatchStatus).
type kind string

const (
	kindRequest kind = "request"
	kindBatch   kind = "batch"
)

// outcome is what the begin step decided for one transition.
type outcome string

const (
	// outcomeOK: the transition is ours to emit; commit or abandon it.
	outcomeOK outcome = "ok"
	// outcomeStale: the key already holds this status or a later one
	// (a duplicate or a regression); emit nothing.
	outcomeStale outcome = "stale"
	// outcomeUnknown: Redis knows nothing of this key (or the status would
	// restart a request's life with another transaction) and the status is
	// neither final nor verified; ask the provider for the current status
	// before emitting.
	outcomeUnknown outcome = "unknown"
	// outcomeBusy: another attempt holds the key's lease; wait and retry.
	outcomeBusy outcome = "busy"
	// outcomeReread: the key was empty, and Redis lost its data after the
	// status was read from the provider: the read may predate a later
	// status emitted before the loss. The attempt was released; read the
	// status again before emitting it.
	outcomeReread outcome = "reread"
)

// A status key, one per request or batch with the id in the hash tag so
// every script touches one key (and one Cluster slot), holds one string:
//
//	st|fl|flp|fle|flt|n|<tx><flx>            (no confirmation key)
//	st|fl|flp|fle|flt|cm|n|<tx><flc><flx>    (with one, m bytes)
//
//	st   last status whose event was produced (confirmed)
//	tx   the transaction (or payout) id that status belongs to (n bytes:
//	     provider ids may hold any byte)
//	fl   the status an attempt is emitting now, or abandoned ("" when none;
//	     an attempt with a Via whose own event was never sent is abandoned
//	     at its Via, GateViaOnly)
//	flp  the confirmed status when that attempt began (its previousStatus)
//	flt  the attempt's token
//	fle  the attempt's lease expiry (Redis server time, unix ms); 0 once it
//	     was abandoned (its produce failed or timed out)
//	flc  the attempt's confirmation key ("" for none, see below)
//	flx  the attempt's transaction (or payout) id: the rest of the value
//
// A key without a confirmation key is written in the layout of the
// previous version, which still reads it. One with a confirmation key (an
// attempt of a batch, in flight or confirmed by its key) has a field more,
// "c" and its length, where the previous version expects a length: its
// scripts fail on it ("unreadable status key"), as on a Redis outage, and
// retry, rather than misread it (TestOldLayoutRefusesConfirmationKeys).
//
// Statuses, tokens and expiries never hold '|'. One string costs a script
// two Redis calls per step (GET, then SET with the TTL), where a hash cost
// three (read, write, expire or delete): the status gate is most of the
// pipeline's Redis CPU (BenchmarkStatusGate). Keys written as hashes by an
// earlier version are read as such and rewritten as strings on their next
// write (load).
//
// A live attempt is a per-key lock: it serialises the transitions of one
// request, so they reach Kafka in order. An abandoned attempt may or may not
// have reached Kafka: it is never counted as emitted (st is unchanged) but a
// later status below it is refused, and the same status may be emitted again
// (with the same deterministic eventId), so neither a regression nor a loss
// can follow from it.
//
// Confirmation by batch: on one Redis, the attempts of one beginMany share
// a token and name a confirmation key (P track:done:<token>). Once their
// events are produced, endAll abandons the failed ones and writes that one
// key in the same script call (endConfirmScript), instead of rewriting every
// status key: an attempt whose confirmation key exists and that was not
// abandoned reads as confirmed (st = fl), and the next write of its status
// key stores it so. One call, so no Redis (a promoted replica, a replayed
// AOF) holds the confirmation without the abandons, and a failed produce
// never reads as confirmed; if the call fails, nothing is confirmed and the
// leases run out (the attempts read as abandoned). Every attempt granted
// under the token must be in that call, or the confirmation key would
// confirm an attempt whose event may never be produced: when some are still
// in flight (a produce past its timeout) or left to their leases (the
// client closed), the others are ended key by key (endGranted), and so are
// the late ones once settled. begin answers a replayed call (the client
// lost the answer and sent it again) with the same grant, so the caller
// knows every key its token holds. A holder's renewal that writes a lost key
// back names the confirmation key too. On a Redis Cluster, where a script
// may only touch its own slot, attempts have no confirmation key and are
// ended key by key.
var beginScript = redis.NewScript(luaStatus + luaBegin + `
local nr = tonumber(ARGV[8])
local grace = {tonumber(ARGV[9]), tonumber(ARGV[10])}
local restart, allowed = {}, {}
for i = 13, 12 + nr do restart[ARGV[i]] = true end
for i = 13 + nr, #ARGV do allowed[ARGV[i]] = true end
local t = now()
local o, from = begin(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5],
  ARGV[6] == '1', ARGV[7] == '1', restart, allowed, t, string.format('%d', t + tonumber(ARGV[4])), '', grace,
  ARGV[12] == '1', ARGV[11])
return {o, from}
`)

// luaStatus reads and writes one status key (the layout above), for every
// status script. load answers st, tx, fl, flp, flt, fle, flx, flc, with an
// attempt confirmed by its confirmation key read as confirmed.
const luaStatus = `
local done, strs, nums = {}, {}, {}
-- str and num convert small numbers (lengths) through a cache: Lua formats
-- and parses every number with printf and strtod.
local function str(n)
  local s = strs[n]
  if not s then s = tostring(n); strs[n] = s end
  return s
end
local function num(s)
  local n = nums[s]
  if not n then n = tonumber(s); nums[s] = n end
  return n
end
local function confirmed(flc)
  local c = done[flc]
  if c == nil then
    c = redis.call('EXISTS', flc) == 1
    done[flc] = c
  end
  return c
end
local function load(k)
  local v = redis.pcall('GET', k)
  if type(v) == 'table' then
    -- WRONGTYPE: a hash written by an earlier version.
    local h = redis.call('HMGET', k, 'st', 'tx', 'fl', 'flp', 'flt', 'fle', 'flx')
    return h[1] or '', h[2] or '', h[3] or '', h[4] or '', h[5] or '', h[6] or '', h[7] or '', ''
  end
  if not v then return '', '', '', '', '', '', '', '' end
  local st, fl, flp, fle, flt, n, p = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(%d+)|()')
  local m = 0
  if not st then
    st, fl, flp, fle, flt, m, n, p = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|c(%d+)|(%d+)|()')
    if not st then error('track: unreadable status key ' .. k) end
    m = num(m)
  end
  n = num(n)
  if p + n + m - 1 > string.len(v) then error('track: unreadable status key ' .. k) end
  local tx, flc, flx = string.sub(v, p, p + n - 1), string.sub(v, p + n, p + n + m - 1), string.sub(v, p + n + m)
  if flc ~= '' and fl ~= '' and fle ~= '0' and confirmed(flc) then
    return fl, flx, '', '', '', '', '', ''
  end
  return st, tx, fl, flp, flt, fle, flx, flc
end
local function enc(st, tx, fl, flp, flt, fle, flx, flc)
  local c = ''
  if flc ~= '' then c = 'c' .. str(string.len(flc)) .. '|' end
  return st .. '|' .. fl .. '|' .. flp .. '|' .. fle .. '|' .. flt .. '|' .. c .. str(string.len(tx)) .. '|' ..
    tx .. flc .. flx
end
local function save(k, ttl, st, tx, fl, flp, flt, fle, flx, flc)
  local v = enc(st, tx, fl, flp, flt, fle, flx, flc)
  if ttl then
    redis.call('SET', k, v, 'PX', ttl)
  else
    redis.call('SET', k, v, 'KEEPTTL')
  end
end
`

// luaBegin is the begin step of one key, shared by beginScript (one key)
// and beginManyScript (many keys in one call).
const luaBegin = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- via, when not '', is a status emitted before to under the same attempt
-- (the dispatcher's SUBMITTED before a PENDING its listing read): allowed is
-- via's, and an attempt at a status via may not follow refuses it even
-- when that status is to (it may be on the topic: via would follow it).
local function begin(k, to, tx, tok, ttl, verified, toFinal, restart, allowed, now, leaseEnd, flc, grace, fresh, via)
  -- A key the caller expects new (the dispatcher's): written only if
  -- absent, in one call, with what the steps below write on an absent key
  -- outside the loss grace; a key that exists takes the steps below.
  if fresh and allowed[''] and (verified or toFinal) and not (now >= grace[1] and now < grace[2]) then
    if redis.call('SET', k, enc('', '', to, '', tok, leaseEnd, tx, flc), 'PX', ttl, 'NX') then return 'ok', '' end
  end
  local st, stx, fl, flp, flt, fle, flx = load(k)
  if fl ~= '' and tonumber(fle) > now then
    -- The same attempt again: the client re-sent a call whose answer it
    -- lost (go-redis retries a pipeline after a timeout or a broken
    -- connection), so it gets the same answer. (A key met twice in one
    -- call has a token per copy: statusStore.distinctTokens.)
    if flt == tok and fl == to and flx == tx then return 'ok', flp end
    return 'busy', st
  end
  -- The loss grace (checkEpoch): nothing is emitted on a key that holds
  -- no status, and nothing is written to it, until the grace has passed.
  if st == '' and now >= grace[1] and now < grace[2] then return 'busy', '' end
  local from = st
  -- A key written back after a loss (renewScript) holds no confirmed
  -- status, only the attempt and the status confirmed before it (flp); if
  -- that attempt was abandoned since, or its lease ran out (a live one
  -- answered busy above), flp is still the last status known emitted: a
  -- RETURNED, which follows APPROVED only, may follow it. (On any other
  -- key with no confirmed status flp is empty.)
  if st == '' and fl ~= '' then from = flp end
  -- A new life needs a new transaction: a transition without one (a
  -- DEFERRED, a SUBMITTED the provider did not list) never restarts one.
  -- A status no one read from the provider (a webhook's body) that is not
  -- final may be an earlier transaction's, sent late or again (a life
  -- ended by its FAILED, then another): read again before it restarts a
  -- life, which it would leave non-final for ever under a new eventId.
  if st ~= '' and tx ~= '' and stx ~= tx and restart[st] then
    if not verified and not toFinal then return 'unknown', '' end
    from = ''
  end
  if fl ~= '' and not (tx ~= '' and flx ~= tx and restart[fl]) then
    local same = to
    if via ~= '' then same = via end
    if fl ~= same and not allowed[fl] then return 'stale', fl end
  end
  if st == '' and fl == '' and not verified and not toFinal then return 'unknown', '' end
  if not allowed[from] then return 'stale', from end
  save(k, ttl, st, stx, to, from, tok, leaseEnd, tx, flc)
  return 'ok', from
end
`

// beginManyScript runs the begin step for every key of one call, so that a
// batch's transitions cost one script call instead of one each. Each key
// keeps its own decision; the call is atomic as a whole, which is only
// stricter. ARGV: lease, ttl, the loss grace's window (from, until: Redis
// ms), the prefix of the attempts' confirmation keys (the key is it and the
// attempt's token; "" for none), the restart statuses (count, then each), the groups
// (count, then per group: to, 1 when it is a request's, verified, final,
// fresh, via, the allowed statuses' count, then each), the slots (count,
// then per slot: group number from 1, token), then two per key: slot number
// (from 1), transaction id. A call's keys share one slot or a few (one
// token per call, one group per status), so a key costs two arguments.
// It answers two strings: each key's outcome as its first letter (o ok, s
// stale, u unknown, b busy), and each key's previous status joined with
// '|' (statuses never hold one). Two strings instead of two per key: the
// reply of a 500-key call was most of the script's and the client's cost
// after the writes (BenchmarkStatusGate).
var beginManyScript = redis.NewScript(luaStatus + luaBegin + `
local lease, ttl = tonumber(ARGV[1]), ARGV[2]
local grace = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local donePrefix = ARGV[5]
local i = 6
local restart, none = {}, {}
for _ = 1, tonumber(ARGV[i]) do i = i + 1; restart[ARGV[i]] = true end
i = i + 1
local groups = {}
local ng = tonumber(ARGV[i]); i = i + 1
for g = 1, ng do
  local to, req, na = ARGV[i], ARGV[i + 1] == '1', tonumber(ARGV[i + 6])
  local verified, final, fresh, via = ARGV[i + 2] == '1', ARGV[i + 3] == '1', ARGV[i + 4] == '1', ARGV[i + 5]
  i = i + 7
  local allowed = {}
  for _ = 1, na do allowed[ARGV[i]] = true; i = i + 1 end
  groups[tostring(g)] = {to = to, restart = req and restart or none, allowed = allowed, verified = verified, final = final,
    fresh = fresh, via = via}
end
local t = now()
local leaseEnd = string.format('%d', t + lease)
local inGrace = t >= grace[1] and t < grace[2]
local slots = {}
local ns = tonumber(ARGV[i]); i = i + 1
for n = 1, ns do
  local g, tok = groups[ARGV[i]], ARGV[i + 1]
  local flc = ''
  if donePrefix ~= '' then flc = donePrefix .. tok end
  -- pre: the value begin's first step writes on a new key, but its
  -- transaction id (the value's last part), when that step applies to the
  -- slot's keys: the step depends only on the group, the call and the slot.
  local pre = false
  if g.fresh and g.allowed[''] and (g.verified or g.final) and not inGrace then
    pre = enc('', '', g.to, '', tok, leaseEnd, '', flc)
  end
  slots[tostring(n)] = {g = g, tok = tok, flc = flc, pre = pre}
  i = i + 2
end
local codes, froms = {}, {}
for n = 1, #KEYS do
  local sl = slots[ARGV[i]]
  local g = sl.g
  if sl.pre and redis.call('SET', KEYS[n], sl.pre .. ARGV[i + 1], 'PX', ttl, 'NX') then
    codes[n], froms[n] = 'o', ''
  else
    -- The key exists (a failed SET NX changed nothing), or begin's first
    -- step does not apply: the steps that read it.
    local o, from = begin(KEYS[n], g.to, ARGV[i + 1], sl.tok, ttl,
      g.verified, g.final, g.restart, g.allowed, t, leaseEnd, sl.flc, grace, false, g.via)
    codes[n] = string.sub(o, 1, 1)
    froms[n] = from
  end
  i = i + 2
end
return {table.concat(codes), table.concat(froms, '|')}
`)

// endScript ends an attempt: ARGV[2] 'ok' confirms it (the event was
// produced), anything else abandons it. An attempt whose lease another one
// took over changes nothing. The key's TTL is left as begin set it, a
// lease's length ago at most.
var endScript = redis.NewScript(luaStatus + luaEnd + `
return finish(KEYS[1], ARGV[1], ARGV[2])
`)

// luaEnd is the end step of one key, shared by endScript, endManyScript
// and endConfirmScript.
const luaEnd = `
local function finish(k, tok, result)
  local st, tx, fl, flp, flt, _, flx, flc = load(k)
  if flt ~= tok then return 0 end
  if result == 'ok' then
    save(k, nil, fl, flx, '', '', '', '', '', '')
  else
    -- An abandoned attempt is never confirmed by a key, so it names none
    -- (and keeps the previous version's layout). 'at:<status>' abandons
    -- it at that status instead of its own: an attempt of which only the
    -- event of its Via was given to the producer.
    if string.sub(result, 1, 3) == 'at:' and string.len(result) > 3 then fl = string.sub(result, 4) end
    save(k, nil, st, tx, fl, flp, flt, '0', flx, '')
  end
  return 1
end
`

// endManyScript runs the end step for every key of one call. ARGV: two per
// key, token and result.
var endManyScript = redis.NewScript(luaStatus + luaEnd + `
for n = 1, #KEYS do finish(KEYS[n], ARGV[2 * n - 1], ARGV[2 * n]) end
return #KEYS
`)

// endConfirmScript abandons the failed attempts of a batch and writes the
// confirmation keys of the others in one call, so that no Redis (a replica
// promoted after a failover, an AOF replayed after a crash) can hold the
// confirmation without the abandons: a failed produce must never read as
// confirmed. KEYS: the keys to abandon, then the confirmation keys. ARGV:
// how many to abandon, the confirmation keys' TTL, then their tokens.
var endConfirmScript = redis.NewScript(luaStatus + luaEnd + `
local na, ttl = tonumber(ARGV[1]), ARGV[2]
for n = 1, na do finish(KEYS[n], ARGV[2 + n], 'abandon') end
for n = na + 1, #KEYS do redis.call('SET', KEYS[n], '1', 'PX', ttl) end
return na
`)

// releaseScript withdraws an attempt that begin granted but that must not be
// emitted (outcomeReread), leaving the key as an empty key reads.
var releaseScript = redis.NewScript(luaStatus + `
local k = KEYS[1]
local st, tx, _, _, flt = load(k)
if flt ~= ARGV[1] then return 0 end
if st == '' and tx == '' then
  redis.call('DEL', k)
else
  save(k, nil, st, tx, '', '', '', '', '', '')
end
return 1
`)

// statusStore keeps the last-known status of every request and batch.
type statusStore struct {
	rdb    redis.UniversalClient
	co     *coalescer // begin and end of concurrent webhooks share round trips
	prefix string
	ttl    time.Duration
	lease  time.Duration
	// lossGrace: see checkEpoch (DefaultLossGrace).
	lossGrace time.Duration
	// keyByKey: a batch's attempts name no confirmation key and are ended
	// key by key, in the previous version's layout (withKeyByKey).
	keyByKey bool
	// chunk is how many keys one script call of beginMany and endMany
	// takes: manyChunk on one Redis (a *redis.Client, Sentinel's included),
	// 1 on anything else, such as a Redis Cluster, where one call's keys
	// must share a slot and each status key has its own.
	chunk int

	// allowedFrom[to] lists every status a key may hold for to to follow
	// it, computed from payout.CanTransition / CanBatchTransition so the
	// domain package stays the one authority on the order.
	requestFrom map[payout.Status][]any
	batchFrom   map[payout.BatchStatus][]any

	// epochCache is the last value read of the epoch marker.
	epochCache atomic.Pointer[string]
	// epochReads counts the reads of the marker from Redis (currentEpochAt).
	epochReads atomic.Uint64
	// stampsCache, on a Redis Cluster, is the last stamps read of its
	// masters (readStamps); on one Redis, the last stamp read of its
	// process (epochAt).
	stampsCache atomic.Pointer[string]
	// canaries, on a Redis Cluster, names each master's canary keys (by
	// address) as readStamps last found them (canaryKeys).
	canaries atomic.Pointer[map[string][]string]
}

// The epoch marker tells a status read before a Redis data loss from one
// read after it. An empty status key means "never emitted" or "lost with
// Redis"; a status read from the provider is emitted on an empty key only
// if the marker still holds the value seen before the read. The marker has
// no TTL: a flush, a restart without persistence or a failover to an empty
// replica removes it, and the first reader after that writes a new random
// value, so every read older than the loss fails the check.
//
// Why it is needed: a poll reads PENDING, a webhook's APPROVED is emitted,
// Redis loses its data, then the poll's PENDING finds an empty key. Without
// the check it is emitted after APPROVED.
func (s *statusStore) epochKey() string { return s.prefix + "track:epoch" }

// epoch returns the marker as last seen (reading it the first time). Take it
// before reading a status from the provider, and pass it as the
// transition's since.
//
// On a Redis Cluster the marker lives on one master and a status key on
// any: a master losing its data alone keeps the marker. There it is
// followed by the stamps of the masters (readStamps), and checkEpoch
// checks the status key's own master against them.
func (s *statusStore) epoch(ctx context.Context) (string, error) {
	v := s.epochCache.Load()
	if v == nil {
		cur, err := s.currentEpoch(ctx)
		if err != nil {
			return "", err
		}
		v = &cur
	}
	if !s.onCluster() {
		// One Redis (Sentinel's included): a failover to a replica that
		// missed the last writes, or a failback to a master that took
		// writes while cut off, keeps the marker; the since carries the
		// stamp of the process it was taken on, and checkEpoch compares it.
		st := s.stampsCache.Load()
		if st == nil {
			cur, _, stamp, err := s.epochAt(ctx, true)
			if err != nil {
				return "", err
			}
			v, st = &cur, &stamp
		}
		return *v + stampsSep + *st, nil
	}
	st := s.stampsCache.Load()
	if st == nil {
		fresh, err := s.readStamps(ctx)
		if err != nil {
			return "", err
		}
		st = &fresh
	}
	return *v + stampsSep + *st, nil
}

// onCluster reports whether the store is on a Redis Cluster, whose masters
// can each lose their data alone.
func (s *statusStore) onCluster() bool {
	_, ok := s.rdb.(*redis.ClusterClient)
	return ok
}

// stampsSep parts a since's marker from the masters' stamps; neither
// holds it.
const stampsSep = "@"

// stampScript answers the stamp of the Redis process that runs it: its run
// id, its replication id once a promotion set it (epochScript's rule), and
// the value of a canary (KEYS[1] when ARGV[1] is not "": a key without TTL
// in one of the master's own slots, written with ARGV[1] when missing). A
// FLUSHALL sent to one master of a Cluster (as redis-cli -c does) empties
// it and keeps its run id and replication id; it takes its canaries too,
// which the next stamp writes anew with new tokens. (INFO commandstats'
// count of FLUSHALL and FLUSHDB, the stamp's third part before, is zeroed
// by a CONFIG RESETSTAT: a flush then a reset kept the stamp, and a reset
// alone after an earlier flush changed it, which made the gate skip a
// status for good.) With ARGV[1] "" KEYS[1], if any (a status key), only
// routes the call to its master, and the stamp names no canary. A
// Cluster master's stamp, as readStamps and masterLost make it, names the
// tokens of all its canaries (canaryKeys) that this process answered,
// joined by canarySep, each with its key's slot (canarySlotSep). Compare
// stamps with sameProcess.
var stampScript = redis.NewScript(redisproc.Lua + `
if not shifted then repl = '' end
local canary = ''
if server ~= '' and ARGV[1] and ARGV[1] ~= '' then
  canary = redis.call('GET', KEYS[1])
  if not canary then
    canary = ARGV[1]
    redis.call('SET', KEYS[1], canary)
  end
end
return server .. ':' .. repl .. ':' .. canary`)

// canarySep parts the tokens of a master's canaries in its stamp; no
// token (newToken's hex) holds it, nor does stampsSep or ",".
const canarySep = "+"

// noCanary stands, in a Cluster master's stamp, for a master whose
// canaries none answered from its process (they all moved, or a read
// failed): it matches no stamp, not even its own.
const noCanary = "-"

// canarySlotSep parts, in a Cluster master's stamp, a canary's token from
// its key's slot ("<token>/<slot>"). A stamp written before names tokens
// alone; sameCanaries reads them by token.
const canarySlotSep = "/"

// sameProcess reports whether the stamp known (a since's, of the one Redis
// or of one master) and the stamp cur read now of the same Redis or master
// name one process with nothing lost between them: the same run id, the
// same replication id or none now, and on a Cluster master a canary
// token in common (sameCanaries). A stamp names the replication id only
// while a promotion set it (redisproc's shifted): one named by the since
// and none now is the same process's backlog freed (repl-backlog-ttl
// without a replica: a new id, the second one cleared), nothing lost, as
// the dispatcher's check judges it (dispatch's sameServer); one named now
// and another or none by the since is a promotion since (a failback).
// Without the rule a promoted master going repl-backlog-ttl without a
// replica made every read under way a re-read, and the gate skipped its
// SUBMITTED and DEFERRED for good.
func sameProcess(known, cur string) bool {
	kServer, kRepl, kCanaries := splitStamp(known)
	cServer, cRepl, cCanaries := splitStamp(cur)
	return kServer == cServer && (kRepl == cRepl || kRepl != "" && cRepl == "") &&
		sameCanaries(kCanaries, cCanaries)
}

// sameCanaries reports whether the canary parts of two stamps of one
// master (sets of tokens with their slots, joined by canarySep) name one
// process that lost nothing, or are both empty (one Redis, which has no
// canaries, or INFO refused). A canary is kept while the master serves
// its slot: a flush of the master takes every canary on it, each written
// anew with a new token. A reshard that moves one of its canaries' slots
// takes only that one away (another process answers it, which the stamp
// does not count): the others still match. So every canary known whose
// slot cur names (the master serves it now, and answered it) must hold
// the same token: a flush after a canary's slot moved away, then the slot
// moved back with its canary, left a token in common, and the flush went
// unseen. With no such slot (or a stamp that names no slots), a token in
// common will do: a flush after such a move takes the canaries still on
// the master, nothing in common again.
func sameCanaries(known, cur string) bool {
	if known == "" || cur == "" {
		return known == cur
	}
	kTokens, cTokens := strings.Split(known, canarySep), strings.Split(cur, canarySep)
	held := false
	for _, k := range kTokens {
		kTok, kSlot, ok := strings.Cut(k, canarySlotSep)
		if !ok {
			continue
		}
		for _, c := range cTokens {
			if cTok, cSlot, ok := strings.Cut(c, canarySlotSep); ok && cSlot == kSlot {
				if cTok != kTok {
					return false
				}
				held = true
			}
		}
	}
	if held {
		return true
	}
	for _, k := range kTokens {
		kTok, _, _ := strings.Cut(k, canarySlotSep)
		if kTok != noCanary && slices.ContainsFunc(cTokens, func(c string) bool {
			cTok, _, _ := strings.Cut(c, canarySlotSep)
			return cTok == kTok
		}) {
			return true
		}
	}
	return false
}

// splitStamp parts a stamp into its run id, replication id and canary
// tokens (a Cluster master's; "" on one Redis).
func splitStamp(st string) (server, repl, canaries string) {
	server, rest, _ := strings.Cut(st, ":")
	repl, canaries, _ = strings.Cut(rest, ":")
	return server, repl, canaries
}

// withCanaries is the stamp base ("<run id>:<replication id>:", answered
// by stampScript without a canary) with the tokens of the canaries keys
// (their stampScript answers, "" for one that failed) that the same
// process answered, each with its key's slot: an answer from another run
// id (a canary whose slot a reshard moved) does not count. With none, the
// stamp names noCanary, unless INFO was refused (no run id to tell a
// process by; no canary was read then).
func withCanaries(base string, keys, answers []string) string {
	server, repl, _ := splitStamp(base)
	if server == "" {
		return base
	}
	var tokens []string
	for i, a := range answers {
		s, _, t := splitStamp(a)
		if s != server || t == "" {
			continue
		}
		if t += canarySlotSep + strconv.Itoa(canarySlot(keys[i])); !slices.Contains(tokens, t) {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 {
		tokens = []string{noCanary}
	}
	slices.Sort(tokens)
	return server + ":" + repl + ":" + strings.Join(tokens, canarySep)
}

// readStamps reads the stamp of every master of the Cluster, joined by
// ",", and caches them for epoch, with each master's canary keys for
// masterLost. Each master answers one pipeline, sent to it alone: its
// stamp, and one stampScript per canary key (a script's keys must share
// one slot). A canary it no longer serves (a reshard moved the slot since
// CLUSTER SLOTS was read) answers an error (MOVED, ASK) and does not
// count.
func (s *statusStore) readStamps(ctx context.Context) (string, error) {
	cc := s.rdb.(*redis.ClusterClient)
	canaries, err := s.canaryKeys(ctx, cc)
	if err != nil {
		return "", err
	}
	var mu sync.Mutex
	var stamps []string
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys := canaries[m.Options().Addr]
		pipe := m.Pipeline()
		base := stampScript.Eval(ctx, pipe, nil, "")
		cmds := make([]*redis.Cmd, 0, len(keys))
		for _, k := range keys {
			cmds = append(cmds, stampScript.Eval(ctx, pipe, []string{k}, newToken()))
		}
		_, _ = pipe.Exec(ctx)
		v, err := base.Text()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			answers := make([]string, len(cmds))
			for j, c := range cmds {
				a, err := c.Text()
				var rerr redis.Error
				if errors.As(err, &rerr) {
					continue // not this master's slot any more
				}
				if err != nil {
					return err
				}
				answers[j] = a
			}
			v = withCanaries(v, keys, answers)
		}
		mu.Lock()
		stamps = append(stamps, v)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(stamps)
	v := strings.Join(stamps, ",")
	s.canaries.Store(&canaries)
	s.stampsCache.Store(&v)
	return v, nil
}

// canaryKeys names, for each master of the Cluster (by address), its
// canary keys: one in each of the first, the middle and the last slot it
// serves (CLUSTER SLOTS; fewer when it serves fewer slots). A reshard
// (redis-cli --cluster reshard or rebalance takes a source's lowest slots
// first) moves a canary with its slot, and another master answers it then:
// the master's other canaries still tell its process kept its data. The
// master of each slot range is the client's (MasterForKey), under the
// address the client gave it, which ForEachMaster and masterLost name it
// by: go-redis rewrites the addresses CLUSTER SLOTS answers (a loopback
// host becomes the seed's, a TLS-only cluster's port 0 the seed's port),
// and a master matched by CLUSTER SLOTS' own address had no canary then,
// so a flush of it alone went unseen.
func (s *statusStore) canaryKeys(ctx context.Context, cc *redis.ClusterClient) (map[string][]string, error) {
	ranges, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	served := map[string][]redis.ClusterSlot{}
	for _, r := range ranges {
		if len(r.Nodes) == 0 || r.End < r.Start {
			continue
		}
		m, err := cc.MasterForKey(ctx, s.canaryKey(r.Start))
		if err != nil {
			return nil, err
		}
		addr := m.Options().Addr
		served[addr] = append(served[addr], r)
	}
	var prev map[string][]string
	if p := s.canaries.Load(); p != nil {
		prev = *p
	}
	keys := make(map[string][]string, len(served))
	for addr, rs := range served {
		slices.SortFunc(rs, func(a, b redis.ClusterSlot) int { return a.Start - b.Start })
		// The canaries known before that the master still serves stay
		// its canaries: a since names their tokens. Chosen anew from its
		// slots as they are now, a reshard that moved slots in on both
		// sides of the master (or out of one side and in on the other)
		// named three new keys, none of whose tokens a since taken
		// before knew: the master read as flushed, and the gate skipped
		// a SUBMITTED for good.
		for _, k := range prev[addr] {
			if servesSlot(rs, canarySlot(k)) && !slices.Contains(keys[addr], k) {
				keys[addr] = append(keys[addr], k)
			}
		}
		n := 0
		for _, r := range rs {
			n += r.End - r.Start + 1
		}
		for _, i := range []int{0, n / 2, n - 1} {
			if len(keys[addr]) >= 3 {
				break
			}
			k := s.canaryKey(nthSlot(rs, i))
			if !slices.Contains(keys[addr], k) {
				keys[addr] = append(keys[addr], k)
			}
		}
	}
	return keys, nil
}

// servesSlot reports whether the ranges rs hold slot.
func servesSlot(rs []redis.ClusterSlot, slot int) bool {
	return slices.ContainsFunc(rs, func(r redis.ClusterSlot) bool { return r.Start <= slot && slot <= r.End })
}

// canarySlot is the slot of a canary key (canaryKey's hash tag, its last
// "{...}").
func canarySlot(k string) int {
	i := strings.LastIndex(k, "{")
	j := strings.LastIndex(k, "}")
	if i < 0 || j < i {
		return -1
	}
	return int(crc16(k[i+1:j])) & 16383
}

// nthSlot is the i-th slot (from 0) of the ranges rs, sorted and disjoint.
func nthSlot(rs []redis.ClusterSlot, i int) int {
	for _, r := range rs {
		if n := r.End - r.Start + 1; i >= n {
			i -= n
			continue
		}
		return r.Start + i
	}
	return rs[len(rs)-1].End
}

// canaryKey is the canary key in slot.
func (s *statusStore) canaryKey(slot int) string {
	return s.prefix + "track:canary:{" + slotTag(slot) + "}"
}

// slotTags caches slotTag's answers.
var slotTags sync.Map

// slotTag is the shortest decimal hash tag whose key slot is slot.
func slotTag(slot int) string {
	if v, ok := slotTags.Load(slot); ok {
		return v.(string)
	}
	for i := 0; ; i++ {
		tag := strconv.Itoa(i)
		if int(crc16(tag))&16383 == slot {
			slotTags.Store(slot, tag)
			return tag
		}
	}
}

// crc16 is the CRC16 (XMODEM) Redis Cluster hashes key slots with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// currentEpoch reads the marker from Redis, writing a new one when it is
// missing.
func (s *statusStore) currentEpoch(ctx context.Context) (string, error) {
	v, _, err := s.currentEpochAt(ctx)
	return v, err
}

// epochScript answers the epoch marker, writing a new one when it is
// missing, and Redis's clock (unix ms). A marker written after a loss
// (ARGV[2] = '1') starts with its creation time, "<unix ms>.<token>", which
// starts the loss grace (checkEpoch); one written by a process that never
// saw a marker (a first start) is a bare token, and starts none.
// With ARGV[3] = '1' it also answers the stamp of the Redis process that
// runs it (stampScript's), which costs two INFO calls.
//
// The stamp names the replication id only once a promotion set it
// (shifted): a master's first replica attaching, or its backlog freed,
// changes the id with nothing lost, and that must not make every read
// under way a re-read (the dispatcher's gate skips its SUBMITTED and
// DEFERRED for good); an id named before and none now is such a change
// too (sameProcess). A failback changes it through a promotion, and a
// failover or a restart changes the run id.
var epochScript = redis.NewScript(`local function stamp()
` + redisproc.Lua + `  if not shifted then repl = '' end
  return server .. ':' .. repl
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if not v then
  v = ARGV[1]
  if ARGV[2] == '1' then v = string.format('%d', now) .. '.' .. v end
  redis.call('SET', KEYS[1], v)
end
if ARGV[3] == '1' then return {v, now, stamp()} end
return {v, now}
`)

// currentEpochAt is currentEpoch with Redis's clock (unix ms). A marker it
// writes starts the loss grace if this store had seen one before: the
// marker went missing since, so Redis lost its data. A store that never
// saw one (a process starting) cannot tell a first start from a loss; it
// starts no grace, and the holders' write-back is the guard then.
func (s *statusStore) currentEpochAt(ctx context.Context) (string, int64, error) {
	v, now, _, err := s.epochAt(ctx, false)
	return v, now, err
}

// freshEpoch is epoch with the marker and the stamps read from Redis, not
// the cache: a since taken from a cache that predates a failover or a
// restart names a process the caller never read under, and checkEpoch
// would refuse it (the gate then skips its status for good).
func (s *statusStore) freshEpoch(ctx context.Context) (string, error) {
	if !s.onCluster() {
		cur, _, st, err := s.epochAt(ctx, true)
		if err != nil {
			return "", err
		}
		return cur + stampsSep + st, nil
	}
	cur, err := s.currentEpoch(ctx)
	if err != nil {
		return "", err
	}
	st, err := s.readStamps(ctx)
	if err != nil {
		return "", err
	}
	return cur + stampsSep + st, nil
}

// epochAt is currentEpochAt, and with stamp the stamp of the Redis process
// that answered (stampScript's), cached for epoch. Only on one Redis: on a
// Cluster the marker's master is not every status key's (readStamps).
func (s *statusStore) epochAt(ctx context.Context, stamp bool) (string, int64, string, error) {
	stamp = stamp && !s.onCluster()
	res, err := epochScript.Run(ctx, s.rdb, []string{s.epochKey()}, newToken(), boolArg(s.epochCache.Load() != nil),
		boolArg(stamp)).Slice()
	if err != nil {
		return "", 0, "", err
	}
	want := 2
	if stamp {
		want = 3
	}
	if len(res) != want {
		return "", 0, "", fmt.Errorf("track: epoch script answered %d values", len(res))
	}
	v, _ := res[0].(string)
	now, _ := res[1].(int64)
	if v == "" {
		return "", 0, "", errors.New("track: epoch script answered no marker")
	}
	var st string
	if stamp {
		st, _ = res[2].(string)
		s.stampsCache.Store(&st)
	}
	s.epochCache.Store(&v)
	s.epochReads.Add(1)
	return v, now, st, nil
}

// graceWindow is the loss grace of the epoch marker last seen, in Redis
// ms, for the begin scripts: they answer busy, without writing, for a key
// that holds no status within it. The first begin after a loss, before
// the new marker is seen, is caught by checkEpoch instead. (0, 0) when
// there is none.
func (s *statusStore) graceWindow() (int64, int64) {
	v := s.epochCache.Load()
	if v == nil || s.lossGrace <= 0 {
		return 0, 0
	}
	created := epochCreated(*v)
	if created == 0 {
		return 0, 0
	}
	return created, created + s.lossGrace.Milliseconds()
}

// epochCreated is when a marker was written (unix ms), 0 for a marker
// written by an earlier version (a bare token).
func epochCreated(marker string) int64 {
	ms, _, ok := strings.Cut(marker, ".")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// checkEpoch runs after a begin, on the attempts it granted with no
// previous status (a request's first status, or any status after a Redis
// data loss but on a key its holder wrote back, which kept the status
// before its attempt) and on the verified, non-final ones it granted after
// a previous status, with one call that reads the epoch marker (writing it
// when missing), Redis's clock and, on one Redis, the stamp of its process,
// and one pipelined release when any attempt must not go on:
//
//   - a verified, non-final status whose since the marker no longer holds,
//     or whose since names another Redis process (one Redis: a failover to
//     a replica that missed the last writes, or a failback, keeps the
//     marker; on a Cluster, masterLost) becomes outcomeReread: it was read
//     before a Redis data loss. A key that holds an older status proves
//     nothing then: the replica may have missed the later status emitted;
//   - any status, while the marker is younger than the loss grace, becomes
//     outcomeBusy. A loss also wipes the leases of attempts still being
//     produced; their holders write them back at their next renewal
//     (keepAlive), well within the grace. Until then an empty key proves
//     nothing, and a status emitted on it could precede a pending one on
//     the topic. A marker written at a first start starts no grace
//     (currentEpochAt).
func (s *statusStore) checkEpoch(ctx context.Context, trs []transition, tokens []string, outs []outcome, froms []string) error {
	var first []int
	stamped := false // a verified, non-final status: its since's stamp is checked
	for i, tr := range trs {
		if outs[i] == outcomeOK && (froms[i] == "" || tr.verified && !tr.final) {
			first = append(first, i)
			stamped = stamped || tr.verified && !tr.final
		}
	}
	if len(first) == 0 {
		return nil
	}
	cur, now, stamp, err := s.epochAt(ctx, stamped)
	if err != nil {
		return err
	}
	lost, err := s.masterLost(ctx, trs, first, cur)
	if err != nil {
		return err
	}
	if stamped && !s.onCluster() {
		for _, i := range first {
			_, known, ok := strings.Cut(trs[i].since, stampsSep)
			if ok && !sameProcess(known, stamp) {
				if lost == nil {
					lost = map[int]bool{}
				}
				lost[i] = true
			}
		}
	}
	// A marker dated after Redis's clock (a failover to a node whose clock
	// is behind) starts no grace: it would last as long as the skew.
	age := now - epochCreated(cur)
	young := age >= 0 && age < s.lossGrace.Milliseconds()
	var keys [][]string
	var args [][]any
	for _, i := range first {
		tr := trs[i]
		switch {
		case tr.verified && !tr.final && (marker(tr.since) != cur || lost[i]):
			outs[i] = outcomeReread
		case young && froms[i] == "":
			outs[i] = outcomeBusy
		default:
			continue
		}
		keys = append(keys, []string{s.key(trs[i].kind, trs[i].id)})
		args = append(args, []any{tokens[i]})
	}
	if len(keys) == 0 {
		return nil
	}
	return s.runPipelined(ctx, releaseScript, keys, args)
}

// marker is the epoch marker a since was taken under.
func marker(since string) string {
	m, _, _ := strings.Cut(since, stampsSep)
	return m
}

// masterLost reports, on a Redis Cluster, the attempts of first whose
// verified, non-final status was read under the marker cur but before
// their status key's master lost its data: that master's stamp is not
// among the since's (sameProcess). One stamp is read per master (redisproc
// asks for INFO once per step, not per key), with the first of its keys,
// so that the call follows the key where the Cluster moved it, and the
// master's canaries (stampScript, one call per canary key: a script's keys
// share one slot) are read in the same pipeline, each routed by its key;
// the stamp names the tokens of those the same process answered
// (withCanaries): a canary whose slot a reshard moved answers from
// another, and does not count, and a key moved to a master the client's
// view of the Cluster had not caught up with has no canary known, and its
// stamp names none the since knows. When one is lost, the stamps are read
// again, for the next read.
func (s *statusStore) masterLost(ctx context.Context, trs []transition, first []int, cur string) (map[int]bool, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return nil, nil
	}
	masterOf := map[int]string{}
	stamps, canaries, canaryKeys := map[string]*redis.Cmd{}, map[string][]*redis.Cmd{}, map[string][]string{}
	pipe := s.rdb.Pipeline()
	for _, i := range first {
		tr := trs[i]
		if !tr.verified || tr.final || marker(tr.since) != cur {
			continue
		}
		key := s.key(tr.kind, tr.id)
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		addr := m.Options().Addr
		masterOf[i] = addr
		if stamps[addr] == nil {
			stamps[addr] = stampScript.Eval(ctx, pipe, []string{key}, "")
			if cs := s.canaries.Load(); cs != nil {
				canaryKeys[addr] = (*cs)[addr]
				for _, k := range (*cs)[addr] {
					canaries[addr] = append(canaries[addr], stampScript.Eval(ctx, pipe, []string{k}, newToken()))
				}
			}
		}
	}
	if len(stamps) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var lost map[int]bool
	for i, addr := range masterOf {
		v, err := stamps[addr].Text()
		if err != nil {
			return nil, err
		}
		if cs := canaries[addr]; len(cs) > 0 {
			answers := make([]string, 0, len(cs))
			for _, c := range cs {
				a, err := c.Text()
				if err != nil {
					return nil, err
				}
				answers = append(answers, a)
			}
			v = withCanaries(v, canaryKeys[addr], answers)
		}
		_, known, _ := strings.Cut(trs[i].since, stampsSep)
		if !slices.ContainsFunc(strings.Split(known, ","), func(k string) bool { return sameProcess(k, v) }) {
			if lost == nil {
				lost = map[int]bool{}
			}
			lost[i] = true
		}
	}
	if len(lost) > 0 {
		if _, err := s.readStamps(ctx); err != nil {
			return nil, err
		}
	}
	return lost, nil
}

// DefaultLossGrace is how long after the epoch marker was written anew
// after a Redis data loss no status is emitted on a key that holds none: long enough for every attempt still being produced to write its
// lease back (maxRenewEvery plus its call's bound).
const DefaultLossGrace = 5 * time.Second

// defaultLossGrace is what a new store starts with: DefaultLossGrace, which
// this package's tests turn off (TestMain) but for the tests of the grace.
var defaultLossGrace = DefaultLossGrace

// withKeyByKey makes the attempts of a batch name no confirmation key, so
// that they are ended key by key and every key keeps the previous
// version's layout (a rolling upgrade from it), and returns s.
func (s *statusStore) withKeyByKey(on bool) *statusStore {
	s.keyByKey = on
	return s
}

// withLossGrace sets the loss grace (negative: none) and returns s.
func (s *statusStore) withLossGrace(d time.Duration) *statusStore {
	s.lossGrace = max(d, 0)
	return s
}

// manyChunk bounds the keys of one many-key script call, so that one call
// holds Redis for about a millisecond at most.
const manyChunk = 256

func newStatusStore(rdb redis.UniversalClient, prefix string, ttl, lease time.Duration) *statusStore {
	s := &statusStore{rdb: rdb, co: &coalescer{rdb: rdb}, prefix: prefix, ttl: ttl, lease: lease, chunk: manyChunk,
		lossGrace:   defaultLossGrace,
		requestFrom: map[payout.Status][]any{}, batchFrom: map[payout.BatchStatus][]any{}}
	for _, to := range payout.Statuses {
		var from []any
		for _, f := range append([]payout.Status{""}, payout.Statuses...) {
			if payout.CanTransition(f, to) {
				from = append(from, string(f))
			}
		}
		s.requestFrom[to] = from
	}
	// RETURNED reverses a payment: on the status topic it follows APPROVED
	// only. On a key that knows nothing it is refused, so that emitRequest
	// emits the APPROVED it implies first (the same eventId as the original
	// APPROVED, if one was emitted before a Redis loss).
	s.requestFrom[payout.StatusReturned] = []any{string(payout.StatusApproved)}
	if _, one := rdb.(*redis.Client); !one {
		s.chunk = 1 // a Cluster (or a Ring): keys of one call may live on different nodes
	}
	for _, to := range payout.BatchStatuses {
		var from []any
		for _, f := range append([]payout.BatchStatus{""}, payout.BatchStatuses...) {
			if payout.CanBatchTransition(f, to) {
				from = append(from, string(f))
			}
		}
		s.batchFrom[to] = from
	}
	return s
}

// requestRestart lists the request statuses after which a NEW Wompi
// transaction for the same request starts a new life: a CANCELLED
// transaction "must be sent again" [doc], and a FAILED one may be sent again
// once the account is fixed [ours].
var requestRestart = []any{string(payout.StatusCancelled), string(payout.StatusFailed)}

func (s *statusStore) key(k kind, id string) string {
	return s.prefix + keyKind(k) + id + "}"
}

// appendKey appends key(k, id) to dst.
func (s *statusStore) appendKey(dst []byte, k kind, id string) []byte {
	dst = append(append(dst, s.prefix...), keyKind(k)...)
	return append(append(dst, id...), '}')
}

// keyKind is the part of a status key between the prefix and the id,
// which the key's closing brace follows (a Redis Cluster hash tag).
func keyKind(k kind) string {
	if k == kindBatch {
		return "track:batch:{"
	}
	return "track:req:{"
}

// doneKey is the confirmation key of the attempts holding token (see
// "Confirmation by batch" at beginScript).
func (s *statusStore) doneKey(token string) string { return s.prefix + "track:done:" + token }

// confirmKey is the confirmation key an attempt holding token names: its
// token's, when it was begun by beginMany on one Redis (chunk > 1), else
// none.
func (s *statusStore) confirmKey(token string, many bool) string {
	if !many || s.chunk == 1 || s.keyByKey {
		return ""
	}
	return s.doneKey(token)
}

// transition identifies one attempt to move a key.
type transition struct {
	kind     kind
	id       string // requestId or batchId
	to       string // the new status
	ref      string // transactionId or payoutId
	final    bool
	verified bool // the status was just read from Wompi
	// since is the epoch marker taken before the status was read from the
	// provider (statusStore.epoch); a verified status needs it.
	since string
	// rail names the transition's rail, for the metrics only.
	rail string
	// fresh: the key is expected to hold no status yet (the dispatcher's
	// first status of a request or batch); begin then tries to write it
	// only if absent, in one Redis call, before it reads the key.
	fresh bool
	// via is a status emitted before to under the same attempt (GateItem.Via):
	// the attempt is granted only where via may follow.
	via string
	// noRestart: another transaction's FAILED or CANCELLED does not
	// restart the request's life (requestRestart): the status is stale
	// after it (withoutRestart).
	noRestart bool
}

// begin runs the begin script; token identifies the attempt.
func (s *statusStore) begin(ctx context.Context, tr transition, token string) (outcome, string, error) {
	res, err := s.co.run(ctx, beginScript, []string{s.key(tr.kind, tr.id)}, s.beginArgs(tr, token)...).StringSlice()
	if err != nil {
		return "", "", err
	}
	if len(res) != 2 {
		return "", "", fmt.Errorf("track: begin script answered %d values", len(res))
	}
	outs, froms := []outcome{outcome(res[0])}, []string{res[1]}
	if err := s.checkEpoch(ctx, []transition{tr}, []string{token}, outs, froms); err != nil {
		return "", "", err
	}
	return outs[0], froms[0], nil
}

// beginArgs are the begin script's arguments for tr.
func (s *statusStore) beginArgs(tr transition, token string) []any {
	var from []any
	var restart []any
	if tr.kind == kindBatch {
		from = s.batchFrom[payout.BatchStatus(tr.to)]
	} else {
		from = s.requestFrom[payout.Status(cmp.Or(tr.via, tr.to))]
		if !tr.noRestart {
			restart = requestRestart
		}
	}
	gfrom, guntil := s.graceWindow()
	args := make([]any, 0, 12+len(restart)+len(from))
	args = append(args, tr.to, tr.ref, token, s.lease.Milliseconds(), s.ttl.Milliseconds(),
		boolArg(tr.verified), boolArg(tr.final), len(restart), gfrom, guntil, tr.via, boolArg(tr.fresh))
	args = append(args, restart...)
	return append(args, from...)
}

// end confirms (ok) or abandons an attempt.
func (s *statusStore) end(ctx context.Context, tr transition, token string, ok bool) error {
	return s.co.run(ctx, endScript, []string{s.key(tr.kind, tr.id)}, token, endResult(ok)).Err()
}

func endResult(ok bool) string {
	if ok {
		return "ok"
	}
	return "abandon"
}

// last returns the confirmed status of a key ("" when unknown).
func (s *statusStore) last(ctx context.Context, k kind, id string) (string, error) {
	v, err := readStatusKey(ctx, s.rdb, s.key(k, id))
	return v.st, err
}

// statusValue is one status key's content (the layout at beginScript).
type statusValue struct {
	st, tx, fl, flp, flt, fle, flx, flc string
}

// parseStatusValue reads a status key's string, as the scripts' load does
// (without resolving its confirmation key).
func parseStatusValue(v string) (statusValue, error) {
	p := strings.SplitN(v, "|", 7)
	if len(p) != 7 {
		return statusValue{}, errUnreadableStatus
	}
	lens, rest := p[5], p[6]
	m := 0
	if c, ok := strings.CutPrefix(lens, "c"); ok {
		var err error
		if m, err = digits(c); err != nil {
			return statusValue{}, errUnreadableStatus
		}
		lens, rest, ok = strings.Cut(rest, "|")
		if !ok {
			return statusValue{}, errUnreadableStatus
		}
	}
	n, err := digits(lens)
	if err != nil || n > len(rest) || m > len(rest)-n {
		return statusValue{}, errUnreadableStatus
	}
	return statusValue{st: p[0], fl: p[1], flp: p[2], fle: p[3], flt: p[4],
		tx: rest[:n], flc: rest[n : n+m], flx: rest[n+m:]}, nil
}

// digits reads a length as the scripts' (%d+) does: digits only.
func digits(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errUnreadableStatus
	}
	return strconv.Atoi(s)
}

var errUnreadableStatus = errors.New("track: unreadable status key")

// readStatusKey reads one status key, a string or, written by an earlier
// version, a hash (zero when absent), resolving its confirmation key as the
// scripts do.
//
// A key naming a confirmation key is read again after it, until it reads
// the same, so that an attempt abandoned in between is not shown as
// confirmed by its batch's key.
func readStatusKey(ctx context.Context, rdb redis.Cmdable, key string) (statusValue, error) {
	for range 5 {
		v, raw, err := readStatusOnce(ctx, rdb, key)
		if err != nil || raw == "" {
			return v, err
		}
		again, err := rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return statusValue{}, err
		}
		if again == raw {
			return v, nil
		}
	}
	return statusValue{}, errors.New("track: status key kept changing while read; try again")
}

// readStatusOnce reads a status key and the confirmation key it names; raw
// is the key's string when the confirmation key was read ("" otherwise).
func readStatusOnce(ctx context.Context, rdb redis.Cmdable, key string) (statusValue, string, error) {
	raw, err := rdb.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return statusValue{}, "", nil
	case err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
		h, err := rdb.HMGet(ctx, key, "st", "tx", "fl", "flp", "flt", "fle", "flx").Result()
		if err != nil {
			return statusValue{}, "", err
		}
		f := make([]string, len(h))
		for i := range h {
			f[i], _ = h[i].(string)
		}
		return statusValue{st: f[0], tx: f[1], fl: f[2], flp: f[3], flt: f[4], fle: f[5], flx: f[6]}, "", nil
	case err != nil:
		return statusValue{}, "", err
	}
	v, err := parseStatusValue(raw)
	if err != nil || v.flc == "" || v.fl == "" || v.fle == "0" {
		return v, "", err // nothing read beside the key
	}
	n, err := rdb.Exists(ctx, v.flc).Result()
	if err != nil {
		return statusValue{}, "", err
	}
	if n == 1 {
		v = statusValue{st: v.fl, tx: v.flx}
	}
	return v, raw, nil
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
