package track

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// The status scripts as they were when a status key was a hash (up to
// 47511e2), kept as the reference for TestStatusStringMatchesHashScripts,
// with two fixes applied since: a transition without a transaction id never
// restarts a request's life, and one neither verified nor final reads the
// provider first (unknown) before it restarts one.
var hashBeginScript = redis.NewScript(hashLuaBegin + `
local nr = tonumber(ARGV[8])
local restart, allowed = {}, {}
for i = 9, 8 + nr do restart[ARGV[i]] = true end
for i = 9 + nr, #ARGV do allowed[ARGV[i]] = true end
local o, from = begin(KEYS[1], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]),
  ARGV[6] == '1', ARGV[7] == '1', restart, allowed, now())
return {o, from}
`)

const hashLuaBegin = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function begin(k, to, tx, tok, lease, ttl, verified, toFinal, restart, allowed, now)
  local v = redis.call('HMGET', k, 'st', 'tx', 'fl', 'fle', 'flx')
  local st, stx, fl, fle, flx = v[1] or '', v[2] or '', v[3], v[4], v[5]
  if fl and tonumber(fle) > now then return 'busy', st end
  local from = st
  if st ~= '' and tx ~= '' and stx ~= tx and restart[st] then
    if not verified and not toFinal then return 'unknown', '' end
    from = ''
  end
  if fl and not (tx ~= '' and flx ~= tx and restart[fl]) then
    if fl ~= to and not allowed[fl] then return 'stale', fl end
  end
  if st == '' and not fl and not verified and not toFinal then return 'unknown', '' end
  if not allowed[from] then return 'stale', from end
  redis.call('HSET', k, 'fl', to, 'flp', from, 'flt', tok, 'fle', tostring(now + lease), 'flx', tx)
  redis.call('PEXPIRE', k, ttl)
  return 'ok', from
end
`

var hashEndScript = redis.NewScript(hashLuaEnd + `
return finish(KEYS[1], ARGV[1], ARGV[2])
`)

const hashLuaEnd = `
local function finish(k, tok, result)
  local v = redis.call('HMGET', k, 'flt', 'fl', 'flx')
  if v[1] ~= tok then return 0 end
  if result == 'ok' then
    redis.call('HSET', k, 'st', v[2], 'tx', v[3])
    redis.call('HDEL', k, 'fl', 'flp', 'flt', 'fle', 'flx')
  else
    redis.call('HSET', k, 'fle', '0')
  end
  return 1
end
`

var hashReleaseScript = redis.NewScript(`
local k = KEYS[1]
if redis.call('HGET', k, 'flt') ~= ARGV[1] then return 0 end
redis.call('HDEL', k, 'fl', 'flp', 'flt', 'fle', 'flx')
if redis.call('HLEN', k) == 0 then redis.call('DEL', k) end
return 1
`)

// formatStatusValue writes v as a status key's string (the layout at
// beginScript).
func formatStatusValue(v statusValue) string {
	c := ""
	if v.flc != "" {
		c = "c" + strconv.Itoa(len(v.flc)) + "|"
	}
	return v.st + "|" + v.fl + "|" + v.flp + "|" + v.fle + "|" + v.flt + "|" + c + strconv.Itoa(len(v.tx)) + "|" +
		v.tx + v.flc + v.flx
}

// hashFields are v's non-empty fields, as the hash scripts kept them.
func hashFields(v statusValue) map[string]any {
	m := map[string]any{}
	for name, f := range map[string]string{"st": v.st, "tx": v.tx, "fl": v.fl, "flp": v.flp, "flt": v.flt, "fle": v.fle, "flx": v.flx} {
		if f != "" {
			m[name] = f
		}
	}
	return m
}

// The string layout decides and stores exactly what the hash layout did:
// a differential test against the hash scripts of the previous version, on
// a real Redis, for random states (confirmed, in flight, abandoned, empty;
// provider ids holding the separator), random transitions through one-key
// and many-key calls, ends that confirm or abandon, and releases. Half of
// the string store's keys start as hashes, as an earlier version left them:
// they must be read as such and rewritten as strings.
func TestStatusStringMatchesHashScripts(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	rdb := rs.Client()
	ref := newStatusStore(rdb, rs.Prefix()+"hash:", time.Hour, 10*time.Second)
	cur := newStatusStore(rdb, rs.Prefix()+"string:", time.Hour, 10*time.Second)
	ep := mustEpoch(t, ref)
	if err := rdb.Set(ctx, cur.epochKey(), marker(ep), 0).Err(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(k kind) (string, bool) {
		if k == kindBatch {
			s := payout.BatchStatuses[rng.IntN(len(payout.BatchStatuses))]
			return string(s), s.Final()
		}
		s := payout.Statuses[rng.IntN(len(payout.Statuses))]
		return string(s), s.Final()
	}
	refs := []string{"tx-1", "t|x|2", "3|", ""}
	kinds := []kind{kindRequest, kindBatch}
	const ids = 5
	read := func(s *statusStore, k kind, id int) (statusValue, bool) {
		key := s.key(k, fmt.Sprint("id-", id))
		v, err := readStatusKey(ctx, rdb, key)
		if err != nil {
			t.Fatal(err)
		}
		if v.fle != "" && v.fle != "0" {
			v.fle = "live"
		}
		v.flc = "" // the hash scripts had none
		return v, rdb.PTTL(ctx, key).Val() > 0
	}
	compare := func(when string) {
		t.Helper()
		for id := range ids {
			for _, k := range kinds {
				a, ta := read(ref, k, id)
				b, tb := read(cur, k, id)
				if a != b || ta != tb {
					t.Fatalf("%s, %s id-%d: hash scripts left %+v (ttl %v), string scripts %+v (ttl %v)", when, k, id, a, ta, b, tb)
				}
			}
		}
	}

	granted := 0
	for round := range 300 {
		for id := range ids {
			for _, k := range kinds {
				var v statusValue
				if rng.IntN(3) > 0 {
					v.st, _ = pick(k)
					v.tx = refs[rng.IntN(len(refs))]
				}
				switch rng.IntN(3) {
				case 1: // abandoned attempt
					v.fl, _ = pick(k)
					v.flp, v.flt, v.fle, v.flx = v.st, "old", "0", refs[rng.IntN(len(refs))]
				case 2: // live attempt
					v.fl, _ = pick(k)
					v.flp, v.flt, v.flx = v.st, "old", refs[rng.IntN(len(refs))]
					v.fle = fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())
				}
				rk, ck := ref.key(k, fmt.Sprint("id-", id)), cur.key(k, fmt.Sprint("id-", id))
				rdb.Del(ctx, rk, ck)
				if v == (statusValue{}) {
					continue
				}
				rdb.HSet(ctx, rk, hashFields(v))
				if rng.IntN(2) == 0 {
					rdb.HSet(ctx, ck, hashFields(v)) // left by an earlier version
				} else {
					rdb.Set(ctx, ck, formatStatusValue(v), 0)
				}
			}
		}
		compare(fmt.Sprint("round ", round, " seeded"))

		n := 1 + rng.IntN(12)
		trs := make([]transition, n)
		tokens := make([]string, n)
		for i := range trs {
			k := kinds[rng.IntN(2)]
			to, final := pick(k)
			// fresh (a SET NX before the read) must not change any answer.
			trs[i] = transition{kind: k, id: fmt.Sprint("id-", rng.IntN(ids)), to: to, ref: refs[rng.IntN(len(refs))],
				final: final, verified: rng.IntN(4) > 0, since: ep, fresh: rng.IntN(2) == 0}
			tokens[i] = fmt.Sprint("tok-", round, "-", i)
			if round%2 == 0 {
				tokens[i] = fmt.Sprint("tok-", round) // one per call, as the engine and the gate give
			}
		}
		distinctTokens(trs, tokens) // as beginMany does, so that the reference sees the same tokens
		var want []string
		for i, tr := range trs {
			args := ref.beginArgs(tr, tokens[i])
			args = append(args[:8:8], args[12:]...) // the reference predates the loss grace's window, via and fresh
			res, err := hashBeginScript.Run(ctx, rdb, []string{ref.key(tr.kind, tr.id)}, args...).StringSlice()
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, res[0]+" "+res[1])
		}
		cur.chunk = []int{1, 5, manyChunk}[rng.IntN(3)]
		outs, froms, err := cur.beginMany(ctx, trs, tokens)
		if err != nil {
			t.Fatal(err)
		}
		for i := range trs {
			if got := string(outs[i]) + " " + froms[i]; got != want[i] {
				t.Fatalf("round %d, %+v: hash scripts answered %q, string scripts %q", round, trs[i], want[i], got)
			}
		}
		compare(fmt.Sprint("round ", round, " after begin"))

		// Release, confirm or abandon every granted attempt.
		var ends, rels []transition
		var endTokens, relTokens []string
		var oks []bool
		for i, o := range outs {
			if o != outcomeOK {
				continue
			}
			granted++
			if typ := rdb.Type(ctx, cur.key(trs[i].kind, trs[i].id)).Val(); typ != "string" {
				t.Fatalf("round %d: a granted key is a %s", round, typ)
			}
			switch rng.IntN(3) {
			case 0:
				rels, relTokens = append(rels, trs[i]), append(relTokens, tokens[i])
			default:
				ends, endTokens, oks = append(ends, trs[i]), append(endTokens, tokens[i]), append(oks, rng.IntN(2) == 0)
			}
		}
		// Releases first, as checkEpoch releases before anything is produced
		// (an attempt of a token must be released or ended before the token's
		// confirmation is written).
		for i, tr := range rels {
			if err := hashReleaseScript.Run(ctx, rdb, []string{ref.key(tr.kind, tr.id)}, relTokens[i]).Err(); err != nil {
				t.Fatal(err)
			}
			if err := releaseScript.Run(ctx, rdb, []string{cur.key(tr.kind, tr.id)}, relTokens[i]).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for i, tr := range ends {
			if err := hashEndScript.Run(ctx, rdb, []string{ref.key(tr.kind, tr.id)}, endTokens[i], endResult(oks[i])).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cur.endAll(ctx, ends, endTokens, oks); err != nil {
			t.Fatal(err)
		}
		compare(fmt.Sprint("round ", round, " after end"))
	}
	if granted < 300 {
		t.Fatalf("only %d attempts granted in 300 rounds: the test does not reach the write paths", granted)
	}
}

// A status key's string holds provider ids of any bytes, the separator
// included; a value that is not the layout is an error, never a status.
func TestParseStatusValue(t *testing.T) {
	v := statusValue{st: "SUBMITTED", tx: "a|b|", fl: "PENDING", flp: "SUBMITTED", flt: "tok", fle: "0", flx: "|x|", flc: "p|track:done:tok"}
	got, err := parseStatusValue(formatStatusValue(v))
	if err != nil || got != v {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	v.flc = "" // the layout without a confirmation key
	if got, err := parseStatusValue(formatStatusValue(v)); err != nil || got != v {
		t.Fatalf("round trip without a confirmation key: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "SUBMITTED", "a|b|c|d|e|f|g", "a|b|c|d|e|9|short", "a|b|c|d|e|-1|x", "a|b|c|d|e|+1|x",
		"a|b|c|d|e|c9|0|short", "a|b|c|d|e|c0|9|short", "a|b|c|d|e|c1|x", "a|b|c|d|e|cx|1|x", "a|b|c|d|e|c-1|1|x", "a|b|c|d|e|c|1|x",
		"a|b|c|d|e|9223372036854775807|x", "a|b|c|d|e|c1|9223372036854775807|x", "a|b|c|d|e|c9223372036854775807|1|x"} {
		if _, err := parseStatusValue(bad); err == nil || !strings.Contains(err.Error(), "unreadable") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// ReadStatus (payoutsctl) reads a status key in either layout: a string,
// or a hash left by an earlier version.
func TestReadStatusBothLayouts(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	rs.Client().Set(ctx, s.key(kindRequest, "str"), formatStatusValue(statusValue{st: "SUBMITTED", tx: "t|1", fl: "PENDING", flt: "tok", fle: "0", flx: "t|1"}), 0)
	rs.Client().HSet(ctx, s.key(kindBatch, "hash"), "st", "SUBMITTED", "tx", "p-1", "fl", "PENDING")
	for _, c := range []struct {
		batch bool
		id    string
		want  KnownStatus
	}{
		{false, "str", KnownStatus{Confirmed: "SUBMITTED", InFlight: "PENDING"}},
		{true, "hash", KnownStatus{Confirmed: "SUBMITTED", InFlight: "PENDING"}},
		{false, "absent", KnownStatus{}},
	} {
		got, err := ReadStatus(ctx, rs.Client(), rs.Prefix(), c.batch, c.id)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.id, got, err, c.want)
		}
	}
	rs.Client().Set(ctx, s.key(kindRequest, "bad"), "SUBMITTED", 0)
	if _, err := ReadStatus(ctx, rs.Client(), rs.Prefix(), false, "bad"); err == nil {
		t.Error("an unreadable key read as a status")
	}
	tr := transition{kind: kindRequest, id: "bad", to: "PENDING", ref: "t", verified: true, since: mustEpoch(t, s)}
	if _, _, err := s.begin(ctx, tr, "tok"); err == nil || !strings.Contains(err.Error(), "unreadable status key") {
		t.Errorf("begin on an unreadable key: %v", err)
	}
}

// oldLoad is the previous version's read of a status key (one string, no
// confirmation key), as its scripts ran it.
const oldLoad = `
local v = redis.call('GET', KEYS[1])
local st, fl, flp, fle, flt, n, p = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(%d+)|()')
if not st then error('track: unreadable status key ' .. KEYS[1]) end
n = tonumber(n)
return {st, string.sub(v, p, p + n - 1), fl, flp, flt, fle, string.sub(v, p + n)}
`

// During a rolling upgrade the previous version's workers read the keys
// this one writes: a key without a confirmation key exactly as before, one
// with a confirmation key not at all (their script fails and is retried,
// as on a Redis outage): misread, its "c" field would shift every field
// after it.
func TestOldLayoutRefusesConfirmationKeys(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second)
	ep := mustEpoch(t, s)
	old := redis.NewScript(oldLoad)
	trs := []transition{
		{kind: kindRequest, id: "one", to: string(payout.StatusSubmitted), ref: "tx|1", verified: true, since: ep},
		{kind: kindRequest, id: "two", to: string(payout.StatusSubmitted), ref: "7|2", verified: true, since: ep},
	}
	if outs, _, err := s.beginMany(ctx, trs, []string{"tok", "tok"}); err != nil || fmt.Sprint(outs) != "[ok ok]" {
		t.Fatalf("begin: %v %v", outs, err)
	}
	for _, tr := range trs {
		if got, err := old.Run(ctx, rs.Client(), []string{s.key(tr.kind, tr.id)}).StringSlice(); err == nil || !strings.Contains(err.Error(), "unreadable") {
			t.Errorf("%s: the previous version read a batch attempt as %q (%v), want an error", tr.id, got, err)
		}
	}
	// Confirmed key by key: no confirmation key, the previous layout.
	if err := s.endMany(ctx, trs[:1], []string{"tok"}, []bool{true}); err != nil {
		t.Fatal(err)
	}
	got, err := old.Run(ctx, rs.Client(), []string{s.key(kindRequest, "one")}).StringSlice()
	if err != nil || fmt.Sprintf("%q", got) != `["SUBMITTED" "tx|1" "" "" "" "" ""]` {
		t.Errorf("the previous version read a confirmed key as %q (%v)", got, err)
	}
	// An attempt abandoned by its batch's end names none either.
	if err := s.endAll(ctx, trs[1:], []string{"tok"}, []bool{false}); err != nil {
		t.Fatal(err)
	}
	if got, err := old.Run(ctx, rs.Client(), []string{s.key(kindRequest, "two")}).StringSlice(); err != nil || got[2] != "SUBMITTED" || got[5] != "0" || got[6] != "7|2" {
		t.Errorf("the previous version read an abandoned attempt as %q (%v)", got, err)
	}
	// A single begin names no confirmation key either.
	tr := transition{kind: kindRequest, id: "three", to: string(payout.StatusApproved), ref: "tx-3", final: true, verified: true, since: ep}
	if out, _, err := s.begin(ctx, tr, "single"); err != nil || out != outcomeOK {
		t.Fatal(out, err)
	}
	if got, err := old.Run(ctx, rs.Client(), []string{s.key(kindRequest, "three")}).StringSlice(); err != nil || got[2] != "APPROVED" || got[4] != "single" || got[6] != "tx-3" {
		t.Errorf("the previous version read a single attempt as %q (%v)", got, err)
	}
}

// With STATUS_CONFIRM_KEYS=false (a rolling upgrade from the previous
// version) a batch's attempts name no confirmation key and are ended key
// by key: every key, in flight or ended, is one the previous version reads.
func TestKeyByKeyKeepsThePreviousLayout(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, 10*time.Second).withKeyByKey(true)
	ep := mustEpoch(t, s)
	old := redis.NewScript(oldLoad)
	trs := []transition{
		{kind: kindRequest, id: "a", to: string(payout.StatusSubmitted), ref: "tx-a", verified: true, since: ep},
		{kind: kindRequest, id: "b", to: string(payout.StatusSubmitted), ref: "tx-b", verified: true, since: ep},
	}
	tokens := []string{"tok", "tok"}
	if outs, _, err := s.beginMany(ctx, trs, tokens); err != nil || fmt.Sprint(outs) != "[ok ok]" {
		t.Fatalf("begin: %v %v", outs, err)
	}
	for _, tr := range trs {
		if got, err := old.Run(ctx, rs.Client(), []string{s.key(tr.kind, tr.id)}).StringSlice(); err != nil || got[2] != "SUBMITTED" || got[4] != "tok" {
			t.Errorf("%s in flight: the previous version read %q (%v)", tr.id, got, err)
		}
	}
	if err := s.endAll(ctx, trs, tokens, []bool{true, false}); err != nil {
		t.Fatal(err)
	}
	if n := rs.Client().Exists(ctx, s.doneKey("tok")).Val(); n != 0 {
		t.Error("a confirmation key was written")
	}
	for id, want := range map[string]string{"a": "SUBMITTED", "b": ""} {
		got, err := old.Run(ctx, rs.Client(), []string{s.key(kindRequest, id)}).StringSlice()
		if err != nil || got[0] != want {
			t.Errorf("%s ended: the previous version read %q (%v), want confirmed %q", id, got, err, want)
		}
	}
}
