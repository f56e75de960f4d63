package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/redisproc"
)

// Batch record states (the "state" field of P{acct}:batch:<batchId>).
const (
	stateClaimed  = "claimed"  // owned, nothing sent yet in this record's life
	statePosting  = "posting"  // a POST /payouts may be in flight or may have landed
	statePosted   = "posted"   // Wompi accepted it: payoutId is known
	stateDone     = "done"     // events produced: nothing left to do
	stateRejected = "rejected" // Wompi refused it for good (validation 4xx): events produced
	stateDeferred = "deferred" // refused for now (a limit or the balance): re-produced to the deferred topic
)

// errStale means the batch must restart from step 1: the Redis epoch
// changed (Redis lost its data), or the lease was taken over, or another
// replica moved the batch on. Nothing was changed by the refused step.
var errStale = errors.New("dispatch: stale epoch or lost lease")

// store is the engine's Redis state: the epoch, the batch records and the
// duplicate index. Every key lives under one hash tag, {dispatch}, so that
// each script proves, atomically with its own step, that the epoch is the
// current one and its rebuild is done (Redis Cluster runs a script on one
// slot only). The price: the dispatcher's coordination keys sit on one
// Cluster shard. Budgets, the rate limit and the tracker's hand-off keep
// their own tags.
type store struct {
	rdb       redis.UniversalClient
	prefix    string
	owner     string // this replica: owns the recovery lock
	leaseMs   int64
	reqTTLms  int64
	recTTLms  int64
	lockTTLms int64
}

// epochLayout is the key layout an epoch vouches for. An epoch hash
// without it (written by a release whose duplicate index was per account)
// is not ready: the first batch after an upgrade runs a recovery, which
// rebuilds the one index from Wompi.
const epochLayout = "2"

func (s *store) epochKey() string { return s.prefix + "{dispatch}:epoch" }
func (s *store) lockKey() string  { return s.prefix + "{dispatch}:recovery" }
func (s *store) graceKey() string { return s.prefix + "{dispatch}:first-start-grace" }

// wantedKey is set, for a few poll intervals at a time, by a replica that
// waits for a recovery it cannot run (missingRails): a replica that can
// runs it then, although no batch of its own needs an epoch
// (answerRecoveryWanted).
func (s *store) wantedKey() string              { return s.prefix + "{dispatch}:recovery-wanted" }
func (s *store) batchKey(batchID string) string { return s.prefix + "{dispatch}:batch:" + batchID }

// reqKey is the duplicate index entry of a requestId: one per deployment,
// whatever the origin account, so a requestId is single-use across
// accounts (and rails).
func (s *store) reqKey(requestID string) string { return s.prefix + reqInfix + requestID }

// reqInfix follows the deployment's prefix in every reqKey.
const reqInfix = "{dispatch}:req:"

// appendReqKeys appends reqKey of each of requestIDs to keys, the keys
// carved from one string (one allocation for a batch instead of one per
// requestId).
func (s *store) appendReqKeys(keys, requestIDs []string) []string {
	n := 0
	for _, id := range requestIDs {
		n += len(s.prefix) + len(reqInfix) + len(id)
	}
	var b strings.Builder
	b.Grow(n)
	for _, id := range requestIDs {
		b.WriteString(s.prefix)
		b.WriteString(reqInfix)
		b.WriteString(id)
	}
	all, at := b.String(), 0
	for _, id := range requestIDs {
		end := at + len(s.prefix) + len(reqInfix) + len(id)
		keys = append(keys, all[at:end])
		at = end
	}
	return keys
}

// echoesKey is the hash of the forms a rebuild listed in upper or mixed
// case, by their lower-case form (suspectMark).
func (s *store) echoesKey() string { return s.prefix + "{dispatch}:echoes" }

// luaNow is the Redis server's clock in ms: leases never depend on the
// replicas' clocks agreeing.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaServer sets server, repl and shifted: the run id and replication id
// of the Redis process running the script and whether a promotion changed
// the latter (redisproc.Lua). An epoch is ready only on the process that
// stamped it (recoveryStartScript), so a restart, a failover or a failback,
// each of which may have lost the last writes while keeping the epoch
// hash, is taken for a loss: a new recovery, with its wait and its rebuild
// from the provider. A missing stamp reads as "" everywhere (epochOK,
// epochScript, finishRecoveryScript), so the Go side and the scripts
// always agree on whether an epoch is ready; where INFO is refused (an ACL
// without +info) the dispatcher logs an error at start (checkRunID). It
// costs two INFO calls per guarded step, a few per batch.
const luaServer = redisproc.Lua + luaSameServer

// luaSameServer defines sameServer(id, stamp, stampRepl): the epoch id's
// stamp (its fields server and repl) names the Redis process running the
// script, with no promotion since (luaServer). The field repl is "<epoch
// id>/<replication id>": written for that epoch on this process
// (recoveryStartScript, replUpdate). One that names another epoch (an
// earlier version's recovery kept the field of the epoch before) or none
// (an epoch stamped by an earlier version) is missing: the stamp is
// judged by its run id alone, and replUpdate writes it. Another
// replication id is a promotion since, and so a loss, when
// second_repl_offset is set (shifted); else it is a benign change
// (replUpdate writes the new one). A dispatcher of an earlier version
// compares the field server only.
//
// replUpdate(key, id, stampRepl) writes the field repl of epoch id when it
// is missing or names another replication id; call it only once
// sameServer answered true.
const luaSameServer = `local function sameServer(id, s, r)
  if (s or '') ~= server then return false end
  if repl == '' or not r then return true end
  local _, _, rid, old = string.find(r, '^(.*)/(%x*)$')
  if rid ~= id or old == '' or old == repl then return true end
  return not shifted
end
local function replUpdate(key, id, r)
  if repl ~= '' and r ~= id .. '/' .. repl then redis.call('HSET', key, 'repl', id .. '/' .. repl) end
end
`

// epochOK sets epochOK: KEYS[1] (the epoch hash) names ARGV[1] as the
// current epoch, ready, in this layout, and stamped by the Redis process
// running the script (luaServer). Every script starts with it, so after a
// Redis loss (whole, or partial with a restart or a failover), or while a
// recovery rebuilds the index, no claim, dedupe or POST step of an older
// or unfinished epoch goes through.
//
// Every script that includes it writes: a missing or benignly changed
// replication id is written (luaSameServer's replUpdate).
const epochOK = luaServer + `local ep = redis.call('HMGET', KEYS[1], 'id', 'state', 'layout', 'server', 'repl')
local epochOK = ep[1] == ARGV[1] and ep[2] == 'ready' and ep[3] == '` + epochLayout + `' and sameServer(ep[1], ep[4], ep[5])
if epochOK then replUpdate(KEYS[1], ep[1], ep[5]) end
`

// epochScript: KEYS epoch. Reply {id, state, layout, its server stamp,
// the server running the script, when its recovery began, "1" when the
// stamp names the process running the script (sameServer)}. It writes
// nothing.
var epochScript = redis.NewScript(luaServer + `
local ep = redis.call('HMGET', KEYS[1], 'id', 'state', 'layout', 'server', 'startedAt', 'firstStart', 'repl')
local began = ep[5] or ''
if ep[6] == '1' then began = '' end
local same = '0'
if sameServer(ep[1] or '', ep[4], ep[7]) then same = '1' end
return {ep[1] or '', ep[2] or '', ep[3] or '', ep[4] or '', server, began, same}
`)

// recoveryStartScript: KEYS epoch; ARGV id, layout, startedAt (wall
// clock, ms). It writes a new epoch, rebuilding, stamped with the server
// running it (its run id and replication id: luaServer) and with Redis's
// count of evicted keys (finishRecoveryScript).
var recoveryStartScript = redis.NewScript(luaServer + luaEvicted + `
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', 'rebuilding', 'layout', ARGV[2], 'startedAt', ARGV[3], 'server', server, 'evicted', evicted)
redis.call('HDEL', KEYS[1], 'firstStart', 'repl')
replUpdate(KEYS[1], ARGV[1], nil)
return 1
`)

// budgetsLostScript: KEYS epoch; ARGV the epoch the caller holds. It
// takes the epoch out of "ready" (state "budgets-lost") when it is still
// that one: the next step of every batch finds it no longer ready and a
// recovery runs (store.budgetsLost).
var budgetsLostScript = redis.NewScript(`
local ep = redis.call('HMGET', KEYS[1], 'id', 'state')
if ep[1] == ARGV[1] and ep[2] == 'ready' then
  redis.call('HSET', KEYS[1], 'state', 'budgets-lost')
  return 1
end
return 0
`)

// budgetsLost ends epoch because the daily budgets' Redis process changed
// while the epoch's did not (ratelimit.ErrServerChanged: on a Redis
// Cluster, the {budget} slot's master restarted or failed over alone). The
// budgets may have lost their last reservations while still reading as
// seeded; the recovery that follows books again what the rails list for
// the day (bookWompi, noteListed) before the budgets are stamped anew.
func (s *store) budgetsLost(ctx context.Context, epoch string) error {
	if err := budgetsLostScript.Run(ctx, s.rdb, []string{s.epochKey()}, epoch).Err(); err != nil {
		return fmt.Errorf("dispatch: end the epoch after the budgets' Redis changed: %w", err)
	}
	return nil
}

// claimScript: KEYS epoch, batch record; ARGV epoch, owner, leaseMs,
// recordTTLms. Reply {code, state, payoutId, firstPostAt, waitMs,
// refused, stale, listed}, refused (on a resume) being the record's
// refusedPrefix fields as {requestId, value, ...}, listed (on a resume)
// the requestIds of its listedPrefix fields still "1", and stale 1 when the record was last
// claimed under another epoch, or ever was (claim.stale): the claim moves
// the record to the current epoch, and its field "stale" keeps the mark
// for every later claim, so that an attempt that ends before its lookup
// (a lookup failing until the job is stopped, a rebalance, a crash) leaves
// the next one the same lookup to make.
var claimScript = redis.NewScript(luaNow + epochOK + `
if not epochOK then return {'noepoch', '', '', '', 0, {}, 0, {}} end
local lease = now + tonumber(ARGV[3])
local st = redis.call('HGET', KEYS[2], 'state')
if not st then
  redis.call('HSET', KEYS[2], 'state', 'claimed', 'owner', ARGV[2], 'lease', lease, 'epoch', ARGV[1], 'rail', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  return {'fresh', 'claimed', '', '', 0, {}, 0, {}}
end
local f = redis.call('HMGET', KEYS[2], 'owner', 'lease', 'payoutId', 'firstPostAt', 'epoch', 'stale')
if st == 'done' or st == 'rejected' then return {'final', st, f[3] or '', f[4] or '', 0, {}, 0, {}} end
local owner, till = f[1] or '', tonumber(f[2] or '0')
if owner ~= '' and owner ~= ARGV[2] and till > now then
  return {'busy', st, '', '', till - now, {}, 0, {}}
end
local stale = 0
if (f[5] or '') ~= ARGV[1] or f[6] == '1' then
  stale = 1
  redis.call('HSET', KEYS[2], 'stale', '1')
end
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'lease', lease, 'epoch', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local refused, listed = {}, {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if st ~= 'claimed' and string.sub(all[i], 1, 8) == 'refused:' then
    refused[#refused + 1] = string.sub(all[i], 9)
    refused[#refused + 1] = all[i + 1]
  elseif string.sub(all[i], 1, ` + strconv.Itoa(len(listedPrefix)) + `) == '` + listedPrefix + `' and all[i + 1] == '1' then
    listed[#listed + 1] = string.sub(all[i], ` + strconv.Itoa(len(listedPrefix)+1) + `)
  end
end
return {'resume', st, f[3] or '', f[4] or '', 0, refused, stale, listed}
`)

// refusedPrefix starts the batch record's field of each payee a
// single-payout rail refused ("refused:<requestId>" = code, 0x1f, message):
// written before the payee's REJECTED is produced, so that an attempt that
// reads the batch again (its offset not committed) neither looks the payee
// up nor posts it again, and emits the same REJECTED (refusedFields).
const refusedPrefix = "refused:"

// listedPrefix starts the batch record's field of each payee whose
// duplicate-index entry an attempt took over from a recovery's mark (the
// batch's rail listed a payout of the requestId, or may hold one under
// another case: dedupeScript). The payee may have been paid, and its
// statuses emitted up to a final one, before a Redis loss, by this batch
// or by another copy of the request: no DEFERRED is emitted for it
// (deferBatch), nor a SUBMITTED when its lookup finds it (finishSingle).
// Once a lookup of the batch found it absent, its field is "0" (payOne):
// the batch posts it, and a later attempt finding that payout emits its
// SUBMITTED.
const listedPrefix = "listed:"

// unbankedPrefix starts the batch record's field of each payee an attempt
// kept and a later one rejected for an unknown bank (verdictUnbanked): its
// index entry says rejected, and the field that a POST of the batch may
// have carried it (dedupeScript).
const unbankedPrefix = "unbanked:"

// refusal is a payee's refusal by its rail, as the batch record keeps it.
// poison: the dispatcher ended the batch for good (job.poison), the code
// being its reason.
type refusal struct {
	code, message string
	poison        bool
}

// newRefusal is a refusal as the batch record keeps it: without the
// separator 0x1f in its code or message, so that the events emitted from
// it and those emitted again from the record read the same.
func newRefusal(code, message string, poison bool) refusal {
	clean := func(s string) string { return strings.ReplaceAll(s, "\x1f", " ") }
	return refusal{code: clean(code), message: clean(message), poison: poison}
}

// refusedFields are the transition's fields that record refusals
// (newRefusal), by requestId: code, 0x1f, message, and for poison 0x1f
// "poison".
func refusedFields(rs map[string]refusal) []string {
	out := make([]string, 0, 2*len(rs))
	for id, r := range rs {
		v := r.code + "\x1f" + r.message
		if r.poison {
			v += "\x1f" + poisonMark
		}
		out = append(out, refusedPrefix+id, v)
	}
	return out
}

// poisonMark ends the recorded refusal of a batch the dispatcher ended
// for good (refusedFields).
const poisonMark = "poison"

// parseRefusal reads one recorded refusal (refusedFields).
func parseRefusal(v string) refusal {
	code, rest, _ := strings.Cut(v, "\x1f")
	msg, mark, _ := strings.Cut(rest, "\x1f")
	return refusal{code: code, message: msg, poison: mark == poisonMark}
}

// guard is the common head of every later step: the epoch is current and
// ready, and the record is still ours.
const guard = epochOK + `if not epochOK then return {'stale'} end
local g = redis.call('HMGET', KEYS[2], 'state', 'owner', 'epoch')
if not g[1] then return {'stale'} end
if g[2] ~= ARGV[2] or g[3] ~= ARGV[1] then return {'lost'} end
`

// transitionScript: KEYS epoch, record; ARGV epoch, owner, leaseMs,
// ",from1,from2,", to, then field/value pairs (a field "?f" is set only if
// absent). Reply {'ok', firstPostAt} or {'stale'|'lost'|'state', current}.
var transitionScript = redis.NewScript(luaNow + guard + `
if not string.find(ARGV[4], ',' .. g[1] .. ',', 1, true) then return {'state', g[1]} end
redis.call('HSET', KEYS[2], 'state', ARGV[5], 'lease', now + tonumber(ARGV[3]))
for i = 6, #ARGV - 1, 2 do
  local f = ARGV[i]
  if string.sub(f, 1, 1) == '?' then
    redis.call('HSETNX', KEYS[2], string.sub(f, 2), ARGV[i + 1])
  else
    redis.call('HSET', KEYS[2], f, ARGV[i + 1])
  end
end
return {'ok', redis.call('HGET', KEYS[2], 'firstPostAt') or ''}
`)

// renewScript: KEYS epoch, record; ARGV epoch, owner, leaseMs.
var renewScript = redis.NewScript(luaNow + guard + `
redis.call('HSET', KEYS[2], 'lease', now + tonumber(ARGV[3]))
return {'ok'}
`)

// releaseLeaseScript: KEYS record; ARGV owner. Lets another replica take the
// batch at once after this one gave up on it.
var releaseLeaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'owner', '', 'lease', 0)
  return 1
end
return 0
`)

// dedupeScript: KEYS epoch, record, then one duplicate-index key per
// requestId; ARGV epoch, owner, batchId, ttlMs, modes (one byte per
// requestId: 'k' to keep it, 'r' to reject it for an unknown bank, 'p' to
// only read what an earlier attempt indexed: nothing is written, and an
// entry that is not this batch's or another's answers 'm'), the
// listing mark of the batch's rail (listedMark), and "1" when the rail
// takes one POST per payee (its new payees are marked). Each requestId not yet
// indexed becomes this batch's: the value is the batch id, or the batch id
// + "#r" for a rejected one. So does one a recovery found listed by the
// batch's own rail (its mark), or one a recovery marked suspect
// (suspectMark): the rail's lookup before any POST finds that payout and
// adopts it. The reply is 'ok' then one verdict byte per
// requestId: 'k' keep, 'r' rejected by this batch (now or in an earlier
// attempt: REJECTED is final), 'x' rejected now or in an earlier attempt
// although an attempt before it kept it (a POST of it may have gone out:
// the entry then becomes the batch id + "#r", and the batch record's field
// unbankedPrefix + requestId keeps the 'x' for every later attempt, whatever
// the bank directory says then), 'd' owned by another batch or listed by
// another rail; then, for a single-payout rail, one byte per requestId,
// 'n' for a kept one this call indexed for the first time (its SET NX
// wrote it) in a complete epoch (the epoch hash's complete field names it:
// its index holds every payout the single-payout rails listed once any
// POST from before the epoch had landed) while Redis evicts nothing and has
// evicted nothing since the epoch's count (luaEvicted, read by the script
// itself: an eviction between two checkEviction runs), 'l' for one whose entry this
// call took over from a recovery's mark (listedPrefix: written for a
// single-payout rail only), or, on a peek, whose entry is such a mark,
// '-' otherwise
// (newPayeeProof),
// and for Wompi "" (a batch rail's POST carries every payee, and its
// lookup is by batch); then "1" when the epoch is complete, "0" when not;
// then, after the echoes, "1" when a kept requestId's entry was already
// this batch's (dedupeBefore), "0" when not. Entries never leave the index: a
// REJECTED or paid requestId is consumed.
//
// ARGV[8] is "" or one byte per requestId: 'f' for one with upper-case
// letters, whose lower-case form's key follows the requestIds' keys (in
// the same order). A requestId whose lower-case form the index holds is
// never new: a rail that echoed our id in lower case to a recovery left it
// there (listSingles), so the payee is looked up first, and the lookup
// refuses to call it absent. When that form holds another single-payout
// rail's listing mark, the requestId is kept by no batch of this rail (or
// of Wompi): its verdict is 'd', and nothing is written (this rail's
// lookup cannot see the other rail's payout).
//
// ARGV[10] is the single-payout rails other than the batch's, comma-
// separated: a suspect mark one of them listed (echoedOn) is not taken
// over either, and the verdict is 'd'.
//
// The last key is the hash of the forms a recovery listed (echoesKey:
// lower-case form -> the id as listed). The fifth reply lists the payees
// the rail may hold under our id in another case, as position (1-based)
// then form: the form listed ("" when no form was kept), or "=" for the
// lower-case form the rail listed as is. A suspect mark taken over, or a
// form learnt through the lower-case key, is kept in the batch record's
// field "echo:<requestId>" (ARGV[9] is the length of the keys' prefix
// before the requestId), so that every later attempt of the batch looks
// that form up too, even once another batch took the mark over.
var dedupeScript = redis.NewScript(guard + luaEvicted + `
local rej = ARGV[3] .. '#r'
local marks = ARGV[7] == '1'
local complete = redis.call('HGET', KEYS[1], 'complete') == ARGV[1]
-- An entry evicted since the epoch was completed (checkEviction reads
-- Redis a minute apart) would let SET NX index a paid payee "for the
-- first time": none is proven new while Redis may evict, or once its
-- count of evicted keys moved from the epoch's (completeScript).
local proven = complete and evictSafe and evicted == (redis.call('HGET', KEYS[1], 'evicted') or '0')
local out, news, echoes = {}, {}, {}
local before = '0'
local fold = ARGV[8] or ''
local plen = tonumber(ARGV[9] or '0')
local forms = KEYS[#KEYS]
local nreq, fk = #KEYS - 3, 0
if fold ~= '' then
  nreq = string.len(fold)
  fk = 2 + nreq
end
-- The bare mark, or the mark followed by the form listed (as an earlier
-- build wrote it; its entries live the dedupe window).
local function suspect(v) return v and string.sub(v, 1, 2) == '` + suspectMark + `' end
local function idOf(k) return string.sub(k, plen + 1) end
local function echoField(i) return 'echo:' .. idOf(KEYS[i]) end
local function unbankedField(i) return '` + unbankedPrefix + `' .. idOf(KEYS[i]) end
local function listedField(i) return '` + listedPrefix + `' .. idOf(KEYS[i]) end
local function formOf(k) return redis.call('HGET', forms, idOf(k)) or '' end
-- ARGV[10]: the single-payout rails other than the batch's, comma-
-- separated. A suspect mark one of them listed (echoedOn) is not taken.
local function listedElsewhere(k)
  for r in string.gmatch(ARGV[10] or '', '[^,]+') do
    if redis.call('HEXISTS', forms, idOf(k) .. '@' .. r) == 1 then return true end
  end
  return false
end
-- A single-payout rail's listing mark (listedMark), not the batch's own.
local function markedElsewhere(x)
  return x ~= nil and string.sub(x, 1, 1) == '~' and not suspect(x) and x ~= ARGV[6]
end
for i = 3, nreq + 2 do
  local mode = string.sub(ARGV[5], i - 2, i - 2)
  local mine = ARGV[3]
  if mode == 'r' then mine = rej end
  local v = mine
  local new = proven and mode == 'k'
  local missing = false
  local echo = nil
  local taken = false
  -- The entry of the id's lower-case form (ARGV[8]), read for a keep or
  -- a peek.
  local w = nil
  if fk > 0 and string.sub(fold, i - 2, i - 2) == 'f' then
    fk = fk + 1
    if mode ~= 'r' then w = redis.call('GET', KEYS[fk]) or nil end
  end
  if mode == 'p' then
    new = false
    v = redis.call('GET', KEYS[i])
    if suspect(v) then echo = formOf(KEYS[i])
    elseif marks and v == ARGV[3] then echo = redis.call('HGET', KEYS[2], echoField(i)) or nil end
    missing = not v or v == ARGV[6] or suspect(v)
    -- Under a recovery's mark: reported as one a call taking it over
    -- would ('l'), though nothing is written.
    if v == ARGV[6] or suspect(v) then taken = true end
  elseif mode == 'k' and markedElsewhere(w) and redis.call('GET', KEYS[i]) ~= ARGV[3] then
    -- Its lower-case form listed by another rail (that rail may have
    -- echoed it in lower case): its payout is invisible to this rail's
    -- lookup (and Wompi has none): a duplicate ('d'), nothing written.
    new = false
    v = redis.call('GET', KEYS[i]) or ''
  elseif not redis.call('SET', KEYS[i], mine, 'NX', 'PX', ARGV[4]) then
    new = false
    v = redis.call('GET', KEYS[i])
    if suspect(v) and listedElsewhere(KEYS[i]) then
      -- Listed in another case by another rail: its payout is invisible
      -- to this rail's lookup (and Wompi has none): a duplicate ('d').
    elseif suspect(v) then
      echo = formOf(KEYS[i])
      redis.call('HSET', KEYS[2], echoField(i), echo)
      if marks then redis.call('HSET', KEYS[2], listedField(i), '1') end
      redis.call('SET', KEYS[i], mine, 'PX', ARGV[4])
      v = mine
      taken = true
    elseif v == ARGV[6] then
      if marks then redis.call('HSET', KEYS[2], listedField(i), '1') end
      redis.call('SET', KEYS[i], mine, 'PX', ARGV[4])
      v = mine
      taken = true
    elseif mode == 'r' and v == ARGV[3] then
      -- Kept by an earlier attempt, rejected now (verdict 'x'): the
      -- requestId is consumed as rejected, so that no later attempt keeps
      -- it once the bank is listed again (its REJECTED may be out), and
      -- the record remembers that a POST may have carried it.
      redis.call('SET', KEYS[i], rej, 'PX', ARGV[4])
      redis.call('HSET', KEYS[2], unbankedField(i), '1')
      v = rej
    elseif marks and v == ARGV[3] then
      echo = redis.call('HGET', KEYS[2], echoField(i)) or nil
    end
    -- Kept by an earlier attempt of the batch: it may have posted it.
    if mode == 'k' and not taken and v == ARGV[3] then before = '1' end
    -- The batch's own entry lives the dedupe window from this attempt,
    -- not from the first: a batch deferred for days before its POST keeps
    -- its requestIds for a window after it is paid.
    if v == ARGV[3] or v == rej then redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
  end
  if missing then out[#out + 1] = 'm'
  elseif v == rej then
    if redis.call('HEXISTS', KEYS[2], unbankedField(i)) == 1 then out[#out + 1] = 'x' else out[#out + 1] = 'r' end
  elseif v == ARGV[3] then out[#out + 1] = 'k'
  else out[#out + 1] = 'd' end
  if w then
    new = false
    local learnt = nil
    if not marks then
    elseif w == ARGV[6] then learnt = '='
    elseif suspect(w) then learnt = formOf(KEYS[fk]) end
    if learnt and echo == nil then
      echo = learnt
      if mode ~= 'p' then redis.call('HSETNX', KEYS[2], echoField(i), learnt) end
    end
  end
  if marks then
    if new then news[#news + 1] = 'n' elseif taken then news[#news + 1] = 'l' else news[#news + 1] = '-' end
  end
  if echo ~= nil then
    echoes[#echoes + 1] = tostring(i - 2)
    echoes[#echoes + 1] = echo
  end
end
local c = '0'
if complete then c = '1' end
return {'ok', table.concat(out), table.concat(news), c, echoes, before}
`)

// rebuildScript: KEYS epoch, then duplicate-index keys; ARGV the epoch
// being rebuilt, ttlMs, "nx" to keep an entry the index holds ("" to
// overwrite), then one value per key. It writes nothing, and returns 0,
// unless that epoch is the current one and still rebuilding.
var rebuildScript = redis.NewScript(`
local ep = redis.call('HMGET', KEYS[1], 'id', 'state')
if ep[1] ~= ARGV[1] or ep[2] ~= 'rebuilding' then return 0 end
` + indexWrites)

// relistScript is rebuildScript for an epoch that is ready (epochOK):
// the listing that completes a first start's epoch (completeEpoch). Its
// writes are always "nx".
var relistScript = redis.NewScript(epochOK + `
if not epochOK then return 0 end
` + indexWrites)

// indexWrites is the tail of rebuildScript and relistScript.
const indexWrites = `
for i = 2, #KEYS do
  if ARGV[3] == 'nx' then
    redis.call('SET', KEYS[i], ARGV[i + 2], 'NX', 'PX', ARGV[2])
  else
    redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ARGV[2])
  end
end
return 1
`

// finishRecoveryScript: KEYS epoch, first start's grace; ARGV id, the
// grace a first start skipped in ms ("" when it was waited), which
// single-payout jobs still wait out (the key's life, on Redis's clock),
// and "complete" when the rebuild listed the rails after the grace (the
// epoch's complete field then names it: newPayeeProof, unless Redis may
// evict keys now or evicted some since the recovery began: an entry the
// rebuild wrote may be gone), and "first" for
// a first start (the epoch's firstStart field: no state was lost, so no
// batch an attempt of a lost state refused is read again,
// job.rejectedOnTopic). It marks the epoch
// ready only if the server that stamped it at the recovery's start still
// runs, and was not promoted since (sameServer): a restart, a failover or a
// failback during the rebuild may have lost part of it, and the next
// recovery redoes it.
var finishRecoveryScript = redis.NewScript(luaServer + luaEvicted + `
local ep = redis.call('HMGET', KEYS[1], 'id', 'server', 'repl')
if ep[1] == ARGV[1] and sameServer(ep[1], ep[2], ep[3]) then
  redis.call('HSET', KEYS[1], 'state', 'ready')
  replUpdate(KEYS[1], ep[1], ep[3])
  if ARGV[2] ~= '' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
  if ARGV[3] == 'complete' and evictSafe and evicted == redis.call('HGET', KEYS[1], 'evicted') then
    redis.call('HSET', KEYS[1], 'complete', ARGV[1])
  end
  if ARGV[4] == 'first' then redis.call('HSET', KEYS[1], 'firstStart', '1') end
  return 1
end
return 0
`)

// completeScript: KEYS epoch, first start's grace; ARGV id, the count of
// evicted keys when the relisting began (evictedScript). It marks an
// epoch complete once its relisting is done (completeEpoch): only while
// that epoch is current and ready on the server that stamped it, its grace
// is over, Redis evicts nothing, and evicted none since the relisting
// began (an entry it wrote may be gone), nor since the epoch's count (its
// field "evicted": its recovery's start, or its last completion). A key
// evicted under the epoch may be the entry of a payee whose POST is still
// to land, which no listing shows: only a recovery makes such an epoch
// complete again.
var completeScript = redis.NewScript(epochOK + luaEvicted + `
if not epochOK or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if not evictSafe or evicted ~= ARGV[2] then return 0 end
if evicted ~= (redis.call('HGET', KEYS[1], 'evicted') or '0') then return 0 end
redis.call('HSET', KEYS[1], 'complete', ARGV[1], 'evicted', evicted)
return 1
`)

// evictedScript: Redis's count of evicted keys, and "1" when it evicts
// nothing now (luaEvicted): the baseline a relisting begins at
// (completeEpoch).
var evictedScript = redis.NewScript(luaEvicted + `
local safe = '0'
if evictSafe then safe = '1' end
return {evicted, safe}
`)

// luaEvicted sets evicted: Redis's count of evicted keys (INFO stats),
// or "" when it cannot be read; policy and limit (INFO memory); and
// evictSafe: Redis evicts nothing (no maxmemory, or noeviction) and both
// could be read. A complete epoch keeps the count its listing began at
// (its field "evicted"): evictionScript.
const luaEvicted = `local evicted, policy, limit = '', '', ''
do
  local info = redis.pcall('INFO', 'stats')
  if type(info) == 'string' then evicted = string.match(info, 'evicted_keys:(%d+)') or '' end
  local mem = redis.pcall('INFO', 'memory')
  if type(mem) == 'string' then
    policy = string.match(mem, 'maxmemory_policy:([%w%-]+)') or ''
    limit = string.match(mem, 'maxmemory:(%d+)') or ''
  end
end
local evictSafe = evicted ~= '' and (limit == '0' or (limit ~= '' and policy == 'noeviction'))
`

// evictionScript: KEYS epoch. It reads Redis's memory policy and its count
// of evicted keys, and takes the epoch's completeness away (its field
// "complete") while Redis may evict keys (maxmemory set with a policy other
// than noeviction, or INFO unreadable), or when Redis evicted keys since
// the epoch was completed (a count other than its field "evicted": keys
// evicted while no dispatcher watched, or under a policy set back since).
// An evicted duplicate-index entry would let SET NX index a paid payee
// "for the first time" (newPayeeProof); the relisting that completes the
// epoch again (completeEpoch) writes back what the rails hold. Reply
// {policy, maxmemory, evicted, 1 when it took completeness away, 1 when
// Redis evicts nothing now (evictSafe)}.
var evictionScript = redis.NewScript(luaEvicted + `
local done, safe = '0', '0'
local c = redis.call('HMGET', KEYS[1], 'complete', 'evicted')
if c[1] and (not evictSafe or (c[2] or '0') ~= evicted) then
  redis.call('HDEL', KEYS[1], 'complete')
  done = '1'
end
if evictSafe then safe = '1' end
return {policy, limit, evicted, done, safe}
`)

// lockScript: KEYS lock; ARGV owner, ttlMs, op ("renew" or "release").
var lockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == 'release' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`)

// claim is the outcome of claimScript.
type claim struct {
	code        string // fresh, resume, final, busy, noepoch
	state       string
	payoutID    string
	firstPostAt time.Time // zero when never posted
	wait        time.Duration
	refused     map[string]refusal // payees their rail refused in an earlier attempt (refusedPrefix)
	listed      map[string]bool    // payees whose index entry an attempt took over from a recovery's mark (listedPrefix)
	// stale: the record was last claimed under an earlier epoch. It
	// outlived a loss of our state that took later writes (a restart from
	// an older snapshot, a failover to a replica that missed them): its
	// state and firstPostAt may be older than the batch's last attempt,
	// which may have posted it. It proves nothing (unproved), for as long
	// as the record lives.
	stale bool
}

// unproved reports whether no attempt on the record has looked its batch
// up since the record began: the record is new (or Redis lost it), or the
// attempt that made it ended before its lookup did (a crash, a lost lease,
// a failing lookup retried by a later claim) and left it "claimed". An
// earlier POST of the batch, from before the record, may have landed. So
// may one of a stale record's batch, made after the record's last write
// that Redis kept.
func (c claim) unproved() bool { return c.code == "fresh" || c.stale || c.state == stateClaimed }

func parseMillis(v any) time.Time {
	if fp, _ := v.(string); fp != "" {
		if ms, err := strconv.ParseInt(fp, 10, 64); err == nil {
			return time.UnixMilli(ms)
		}
	}
	return time.Time{}
}

// claim takes the batch's lease (see claimScript); a fresh record also
// keeps the batch's rail, for payoutsctl stuck.
func (s *store) claim(ctx context.Context, owner, epoch, batchID string, n rail.Name) (claim, error) {
	res, err := claimScript.Run(ctx, s.rdb, []string{s.epochKey(), s.batchKey(batchID)},
		epoch, owner, s.leaseMs, s.recTTLms, string(n)).Slice()
	if err != nil {
		return claim{}, fmt.Errorf("dispatch: claim batch %s: %w", batchID, err)
	}
	if len(res) != 8 {
		return claim{}, fmt.Errorf("dispatch: claim batch %s: unexpected reply %v", batchID, res)
	}
	c := claim{}
	c.code, _ = res[0].(string)
	c.state, _ = res[1].(string)
	c.payoutID, _ = res[2].(string)
	c.firstPostAt = parseMillis(res[3])
	w, _ := res[4].(int64)
	c.wait = time.Duration(w) * time.Millisecond
	if rs, _ := res[5].([]any); len(rs) > 0 {
		c.refused = make(map[string]refusal, len(rs)/2)
		for i := 0; i+1 < len(rs); i += 2 {
			id, _ := rs[i].(string)
			v, _ := rs[i+1].(string)
			c.refused[id] = parseRefusal(v)
		}
	}
	stale, _ := res[6].(int64)
	c.stale = stale == 1
	if ls, _ := res[7].([]any); len(ls) > 0 {
		c.listed = make(map[string]bool, len(ls))
		for _, v := range ls {
			id, _ := v.(string)
			c.listed[id] = true
		}
	}
	return c, nil
}

// guarded runs a script whose first reply element is 'ok' or a refusal and
// maps refusals to errStale.
func guarded(what string, res []any, err error) ([]any, error) {
	if err != nil {
		return nil, fmt.Errorf("dispatch: %s: %w", what, err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("dispatch: %s: empty reply", what)
	}
	if code, _ := res[0].(string); code != "ok" {
		detail := ""
		if len(res) > 1 {
			detail = fmt.Sprint(" ", res[1])
		}
		return nil, fmt.Errorf("%w: %s refused (%s%s)", errStale, what, code, detail)
	}
	return res[1:], nil
}

// transition moves the batch from one of from to to, setting fields, and
// returns the record's firstPostAt (zero when never posted).
func (s *store) transition(ctx context.Context, owner, epoch, batchID string, from []string, to string, fields ...string) (time.Time, error) {
	args := make([]any, 0, 5+len(fields))
	args = append(args, epoch, owner, s.leaseMs, ","+strings.Join(from, ",")+",", to)
	for _, f := range fields {
		args = append(args, f)
	}
	res, err := transitionScript.Run(ctx, s.rdb, []string{s.epochKey(), s.batchKey(batchID)}, args...).Slice()
	rest, err := guarded("move batch "+batchID+" to "+to, res, err)
	if err != nil || len(rest) == 0 {
		return time.Time{}, err
	}
	return parseMillis(rest[0]), nil
}

func (s *store) renew(ctx context.Context, owner, epoch, batchID string) error {
	res, err := renewScript.Run(ctx, s.rdb, []string{s.epochKey(), s.batchKey(batchID)}, epoch, owner, s.leaseMs).Slice()
	_, err = guarded("renew lease of "+batchID, res, err)
	return err
}

// keyHeldField is the batch record's field set once Wompi answered a POST
// of the batch 409 EXC_022: it holds the idempotency key, so the payout
// exists whether or not its lookup by reference shows it (lookupSettled).
const keyHeldField = "keyHeld"

// keyHeld reports whether the batch's record says Wompi holds its key
// (keyHeldField).
func (s *store) keyHeld(ctx context.Context, batchID string) (bool, error) {
	ok, err := s.rdb.HExists(ctx, s.batchKey(batchID), keyHeldField).Result()
	if err != nil {
		return false, fmt.Errorf("dispatch: read whether Wompi holds the key of batch %s: %w", batchID, err)
	}
	return ok, nil
}

func (s *store) releaseLease(ctx context.Context, owner, batchID string) error {
	return releaseLeaseScript.Run(ctx, s.rdb, []string{s.batchKey(batchID)}, owner).Err()
}

// Modes and verdicts of dedupeScript.
const (
	modeKeep        = 'k'
	modeReject      = 'r'
	modePeek        = 'p' // read only (job.dedupe's peek)
	verdictKeep     = 'k'
	verdictRejected = 'r'
	// verdictUnbanked: rejected for an unknown bank, now or by an earlier
	// attempt, although an attempt before that kept the requestId (its
	// POST may have carried the payee): the bank directory changed in
	// between. It stays so for every later attempt (unbankedPrefix), even
	// once the bank is listed again: the payee's REJECTED may be out.
	verdictUnbanked = 'x'
	verdictOther    = 'd'
	verdictMissing  = 'm' // a peek found no entry of a batch (none, or a recovery's mark)
)

// listedMark is the duplicate index's value for a requestId a recovery
// found in the listing of a single-payout rail, whose payouts do not name
// our batch (rebuildIndex). A batch id never starts with '~'.
func listedMark(n rail.Name) string { return "~" + string(n) }

// suspectMark is the duplicate-index value a rebuild writes under the
// lower-case form of an id a single-payout rail listed in upper or mixed
// case: perhaps one of our requestIds echoed in another case. A batch of
// the rail that listed it takes such an entry over, as its own rail's
// listedMark, so its payee is looked up before any POST and never proven
// new, under its own id and under the form listed, which the rebuild keeps
// apart (echoesKey: a dispatcher of a version before it reads the mark as
// it always did). A batch of another rail (Wompi included), whose lookup
// cannot see that payout, takes the entry for a duplicate (echoedOn).
const suspectMark = "~?"

// dedupe indexes the batch's requestIds (modes: one modeKeep or modeReject
// each) for a batch of rail n and returns one verdict per requestId, and
// for a single-payout rail one byte per requestId, newPayee for a kept one
// no dispatcher can have posted (nil for Wompi) (dedupeScript). One round
// trip. The entries it writes or renews live the dedupe window
// (dedupeLiving: longer for a batch paid later).
func (s *store) dedupe(ctx context.Context, owner, epoch, batchID string, n rail.Name, requestIDs []string, modes []byte) (verdicts, news []byte, complete bool, echoes map[int]string, err error) {
	return s.dedupeLiving(ctx, s.reqTTLms, owner, epoch, batchID, n, requestIDs, modes)
}

// dedupeLiving is dedupe with entries that live ttlMs.
func (s *store) dedupeLiving(ctx context.Context, ttlMs int64, owner, epoch, batchID string, n rail.Name, requestIDs []string, modes []byte) (verdicts, news []byte, complete bool, echoes map[int]string, err error) {
	verdicts, news, complete, echoes, _, err = s.dedupeBefore(ctx, ttlMs, owner, epoch, batchID, n, requestIDs, modes)
	return verdicts, news, complete, echoes, err
}

// dedupeBefore is dedupeLiving, and before tells that a kept requestId's
// entry was already this batch's: an earlier attempt of the batch indexed
// it, and may have posted it, whatever its record says (a record evicted
// or run out while the index kept its entries).
func (s *store) dedupeBefore(ctx context.Context, ttlMs int64, owner, epoch, batchID string, n rail.Name, requestIDs []string, modes []byte) (verdicts, news []byte, complete bool, echoes map[int]string, before bool, err error) {
	keys := make([]string, 0, 2+len(requestIDs))
	keys = append(keys, s.epochKey(), s.batchKey(batchID))
	keys = s.appendReqKeys(keys, requestIDs)
	marks, fold := "0", []byte(nil)
	if n != rail.Wompi {
		marks = "1"
	}
	for i, id := range requestIDs {
		if l := strings.ToLower(id); l != id {
			if fold == nil {
				fold = bytes.Repeat([]byte{'-'}, len(requestIDs))
			}
			fold[i] = 'f'
			keys = append(keys, s.reqKey(l))
		}
	}
	keys = append(keys, s.echoesKey())
	var others []string
	for _, r := range rail.Names {
		if r != n && r != rail.Wompi {
			others = append(others, string(r))
		}
	}
	res, err := dedupeScript.Run(ctx, s.rdb, keys, epoch, owner, batchID, ttlMs, string(modes), listedMark(n), marks, string(fold),
		len(s.reqKey("")), strings.Join(others, ",")).Slice()
	rest, err := guarded("dedupe batch "+batchID, res, err)
	if err != nil {
		return nil, nil, false, nil, false, err
	}
	var v, nw, c, bf string
	var ec []any
	if len(rest) == 5 {
		v, _ = rest[0].(string)
		nw, _ = rest[1].(string)
		c, _ = rest[2].(string)
		ec, _ = rest[3].([]any)
		bf, _ = rest[4].(string)
	}
	wantMarks := len(requestIDs)
	if marks == "0" {
		wantMarks = 0
	}
	if len(v) != len(requestIDs) || len(nw) != wantMarks || len(ec)%2 != 0 {
		return nil, nil, false, nil, false, fmt.Errorf("dispatch: dedupe batch %s: %d verdicts, %d marks and %d echo fields for %d requests",
			batchID, len(v), len(nw), len(ec), len(requestIDs))
	}
	for k := 0; k < len(ec); k += 2 {
		pos, _ := ec[k].(string)
		form, _ := ec[k+1].(string)
		p, err := strconv.Atoi(pos)
		if err != nil || p < 1 || p > len(requestIDs) {
			return nil, nil, false, nil, false, fmt.Errorf("dispatch: dedupe batch %s: echo position %q", batchID, pos)
		}
		if echoes == nil {
			echoes = map[int]string{}
		}
		echoes[p-1] = form
	}
	if wantMarks == 0 {
		return []byte(v), nil, c == "1", echoes, bf == "1", nil
	}
	return []byte(v), []byte(nw), c == "1", echoes, bf == "1", nil
}

// takenOver marks, in dedupe's second reply, a requestId whose entry the
// call took over from a recovery's mark (listedPrefix).
const takenOver = 'l'

// newPayee marks, in dedupe's second reply, a requestId no dispatcher can
// have posted: see newPayeeProof.
const newPayee = 'n'

// epoch returns the current epoch id and whether it is ready (in this
// layout).
func (s *store) epoch(ctx context.Context) (id string, ready bool, err error) {
	id, ready, _, err = s.epochBegun(ctx)
	return id, ready, err
}

// epochBegun is epoch, with when the epoch's recovery began (the
// recovering dispatcher's wall clock): zero for a first start's epoch.
// An epoch a version without the firstStart mark recovered counts as
// after a loss.
func (s *store) epochBegun(ctx context.Context) (id string, ready bool, began time.Time, err error) {
	vals, err := epochScript.Run(ctx, s.rdb, []string{s.epochKey()}).StringSlice()
	if err != nil {
		return "", false, time.Time{}, fmt.Errorf("dispatch: read epoch: %w", err)
	}
	if len(vals) != 7 {
		return "", false, time.Time{}, fmt.Errorf("dispatch: read epoch: %d values", len(vals))
	}
	id, st, layout, same := vals[0], vals[1], vals[2], vals[6]
	return id, id != "" && st == "ready" && layout == epochLayout && same == "1", parseMillis(vals[5]), nil
}

// firstStartWait is how long single-payout jobs must still wait after a
// first start skipped the recovery grace (starts.go), by the Redis server's
// clock: the remaining life of graceKey, 0 when there is none.
func (s *store) firstStartWait(ctx context.Context) (time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, s.graceKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("dispatch: read the first start's grace: %w", err)
	}
	return max(d, 0), nil
}
