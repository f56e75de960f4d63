package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Defaults of the seen index's settings.
const (
	// DefaultRedisPrefix starts every key of the seen index: the prefix the
	// dispatcher and the tracker use by default (REDIS_PREFIX).
	DefaultRedisPrefix = "payouts:"
	// DefaultDedupeWindow is how long ingest remembers a requestId: the
	// dispatcher's default DEDUPE_WINDOW, so a copy is caught at ingest for
	// as long as the dispatcher would drop it.
	DefaultDedupeWindow = 30 * 24 * time.Hour
	// seenTimeout bounds one claim round trip.
	seenTimeout = 10 * time.Second
)

// errSeenIndex wraps every failure of the seen index (Redis unreachable,
// timed out, refusing). It surfaces in the log of the aborted window, never
// from Run: the window is re-read after a backoff, and no request of it is
// batched or rejected until a claim succeeds.
var errSeenIndex = errors.New("ingest: the seen index (REDIS_URL) failed")

// seenIndex is ingest's memory of the requestIds it has handled, across
// windows and instances: one Redis string per requestId,
//
//	P ingest:{<requestId>}  "<partition>:<offset>[:<timestamp ms>]" of the record that holds it, TTL DEDUPE_WINDOW
//
// (P is REDIS_PREFIX; the hash tag is the requestId, so on Redis Cluster
// the keys spread over every slot). A record claims its requestId with
// SET NX GET before any event of it is produced: a key that was free, or
// that names this very record (its window was aborted, or its instance
// died, after the claim and before the commit, and the record is read
// again; its TTL is then renewed, renewClaimScript), lets the record
// through; a key naming another record makes it a
// copy. Kafka's transaction gives the exactly-once of the record itself;
// the index only has to tell one record from another, and a requests
// record's partition, offset and timestamp never change. The timestamp
// (Config.SeenTimestamps) matters when positions start again from 0 (the
// requests topic deleted and re-created while Redis keeps its claims): a
// copy republished at its original's old position has its own timestamp,
// so it is a copy, not the original read again; without it, the copy is
// batched again (and the dispatcher's duplicate index drops it). A claim
// with the timestamp and one without it at the same position name the
// same record (ownClaim), so instances may differ in the setting while it
// is turned on; an ingest release older than the setting reads a claim
// with a timestamp as another record's.
type seenIndex struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration

	// One claim's commands, keys and arguments, kept for the next claim
	// (a worker's claims never overlap: its window loop makes them one at
	// a time). A command's arguments point into keys and into the caller's
	// values, so that a claim allocates its keys once, not per request.
	cmds []redis.StatusCmd
	keys []string
	ends []int
	args []any
}

// key returns the key of requestID. A requestId that is not a valid
// reference (too long, or with characters such as braces that would break
// the hash tag; validation rejects it anyway) is keyed by its hash.
func (s *seenIndex) key(requestID string) string {
	return string(s.appendKey(nil, requestID))
}

// appendKey appends the key of requestID to dst.
func (s *seenIndex) appendKey(dst []byte, requestID string) []byte {
	dst = append(append(dst, s.prefix...), "ingest:{"...)
	if payout.ValidReference(requestID) {
		dst = append(dst, requestID...)
	} else {
		dst = append(append(dst, '#'), payout.EventID(requestID)...)
	}
	return append(dst, '}')
}

// seenValue is the value a record writes: "<partition>:<offset>", and
// ":<timestamp ms>" after it when timestampMs is not negative
// (Config.SeenTimestamps).
func seenValue(partition int32, offset, timestampMs int64) string {
	var b [48]byte
	return string(appendSeenValue(b[:0], partition, offset, timestampMs))
}

// appendSeenValue appends the value a record writes to dst (seenValue).
func appendSeenValue(dst []byte, partition int32, offset, timestampMs int64) []byte {
	dst = strconv.AppendInt(dst, int64(partition), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, offset, 10)
	if timestampMs < 0 {
		return dst
	}
	dst = append(dst, ':')
	return strconv.AppendInt(dst, timestampMs, 10)
}

// ownClaim reports whether held, the value a requestId's key holds, names
// the record whose value is value: the same value, or the same position
// with the timestamp on one side only (written by an instance whose
// Config.SeenTimestamps differs, in a window that was then aborted and is
// read again here).
func ownClaim(held, value string) bool {
	if held == value {
		return true
	}
	short, long := held, value
	if len(short) > len(long) {
		short, long = long, short
	}
	return len(long) > len(short) && long[len(short)] == ':' && long[:len(short)] == short &&
		strings.Count(short, ":") == 1
}

// claim claims, in one pipelined round trip, the requestId of every polled
// record that has one (ids[i] != ""), and sets copies[i] for each record
// whose requestId another record already holds. The records of one call
// claim in order, so the first of two records with one requestId holds it.
// On error nothing may be produced for any of the records: some claims may
// have been written, which is harmless (each names its own record, which
// the re-read finds).
func (s *seenIndex) claim(ctx context.Context, ids, values []string, copies []bool) error {
	// The caller reuses copies from poll to poll: a poll with no id to
	// claim must not keep the marks of the last one (a record with none
	// would be dead-lettered as a copy of a request that was never sent).
	clear(copies)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), seenTimeout)
	defer cancel()
	s.slots(ids)
	// SET <key> <value> PX <ttl> NX GET: what SetArgs with Mode NX, Get and
	// TTL sends, built here without its per-command argument slices. The
	// TTL is at least 1 ms, as SetArgs rounds it.
	ttl := any(max(1, s.ttl.Milliseconds()))
	pipe := s.rdb.Pipeline()
	for i, id := range ids {
		if id == "" {
			continue
		}
		a := s.args[7*i : 7*i+7 : 7*i+7]
		a[0], a[1], a[2], a[3], a[4], a[5], a[6] = "set", &s.keys[i], &values[i], "px", ttl, "nx", "get"
		s.cmds[i] = *redis.NewStatusCmd(ctx, a...)
		_ = pipe.Process(ctx, &s.cmds[i])
	}
	if pipe.Len() == 0 {
		return nil
	}
	// Exec reports the first failed command; a free key (redis.Nil) is no
	// failure, so every command is read below instead.
	_, _ = pipe.Exec(ctx)
	var again redis.Pipeliner // records that found their own claim
	for i, id := range ids {
		if id == "" {
			continue
		}
		held, err := s.cmds[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			// Free: this record holds the requestId now.
		case err != nil:
			return fmt.Errorf("%w: %w", errSeenIndex, err)
		case ownClaim(held, values[i]):
			// Read again after its window aborted: SET NX left the TTL
			// the first claim set, which aborted windows may have worn
			// down to less than the window now open needs.
			if again == nil {
				again = s.rdb.Pipeline()
			}
			s.cmds[i] = *redis.NewStatusCmd(ctx, "eval", renewClaimScript, "1", &s.keys[i], &values[i], ttl)
			_ = again.Process(ctx, &s.cmds[i])
		default:
			copies[i] = true
		}
	}
	if again == nil {
		return nil
	}
	_, _ = again.Exec(ctx)
	for i, id := range ids {
		if id == "" || copies[i] || s.cmds[i].Args()[0] != "eval" {
			continue
		}
		held, err := s.cmds[i].Result()
		switch {
		case errors.Is(err, redis.Nil):
			// Expired in between, and claimed again by this record.
		case err != nil:
			return fmt.Errorf("%w: %w", errSeenIndex, err)
		default:
			// Renewed; or another record claimed the requestId after the
			// old claim ran out (this one is then the copy).
			copies[i] = !ownClaim(held, values[i])
		}
	}
	return nil
}

// renewClaimScript claims a requestId again for a record that found its
// own claim (ownClaim) with SET NX GET: the key is given the whole dedupe
// window again when it still names this record, set when it ran out in
// between, and left alone when another record claimed it since. A claim
// renewed so outlives the window that lets its record through
// (DEDUPE_WINDOW >= 2 x BATCH_MAX_WINDOW + 1m counts from that window's
// start): left as the first claim set it, a record read again after aborted
// windows (an outage lasts as long as it lasts) could find its claim near
// its end, the claim run out while that window was open, and a copy read
// meanwhile find the requestId free: both batched. Only records read again
// take this second round trip. Reply: the value held before, as SET GET.
const renewClaimScript = `
local held = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX', 'GET')
if held then
  local s, l = held, ARGV[1]
  if #s > #l then s, l = l, s end
  local _, colons = string.gsub(s, ':', '')
  if s == l or (#l > #s and string.sub(l, 1, #s + 1) == s .. ':' and colons == 1) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
return held
`

// slots sizes the claim's commands and arguments for ids, and writes the
// key of each requestId into one string: keys[i] is ids[i]'s ("" for none).
func (s *seenIndex) slots(ids []string) {
	if cap(s.cmds) < len(ids) {
		s.cmds = make([]redis.StatusCmd, len(ids))
		s.keys = make([]string, len(ids))
		s.ends = make([]int, len(ids))
		s.args = make([]any, 7*len(ids))
	}
	s.cmds, s.keys, s.ends, s.args = s.cmds[:len(ids)], s.keys[:len(ids)], s.ends[:len(ids)], s.args[:7*len(ids)]
	size := 0
	for _, id := range ids {
		size += len(s.prefix) + len("ingest:{}") + len(id)
	}
	buf := make([]byte, 0, size)
	for i, id := range ids {
		if id != "" {
			buf = s.appendKey(buf, id)
		}
		s.ends[i] = len(buf)
	}
	all, lo := string(buf), 0
	for i, end := range s.ends {
		s.keys[i], lo = all[lo:end], end
	}
}
