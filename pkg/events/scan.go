package events

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ScanStats counts what a Scan read.
type ScanStats struct {
	Records int64 // data records read (committed, in the partitions asked)
	// Ends is the offset each partition asked was read up to (excluded):
	// its last stable offset or high watermark as the read began. A
	// record written after the read began is at or after it.
	Ends map[int32]int64
	// TopicID is the topic's id (hex) as ScanFromKeysAfter read it, ""
	// when the brokers give none: offsets are of that log only.
	TopicID string
	// Reached is the offset each partition was read up to (excluded)
	// when the scan stopped, returned with an error too (a context's
	// deadline, fn's error): every record from where the partition's read
	// started up to it went through match, and fn when it matched, and fn
	// returned nil. A partition whose start was not known yet is absent.
	// After a complete scan it equals Ends. A caller that ran out of time
	// resumes from it (ScanFromKeysAfter, ScanFromAfter) and reads nothing
	// twice, misses nothing.
	Reached map[int32]int64
}

// Scan reads the given partitions of topic from their start to their last
// stable offset as of the call, read_committed, and calls fn with every
// data record whose key equals key (every record when key is nil). It
// stops at the end: control records (transaction markers) are kept so
// that the scan sees the last offset and knows it is done.
func Scan(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, key []byte, fn func(*kgo.Record) error) (ScanStats, error) {
	return scan(ctx, opts, topic, parts, toStable, keyIs(key), fn, listStarts(ctx, topic))
}

// ScanSettled is Scan up to each partition's high watermark as of the
// call, still read_committed: it waits for every transaction open below
// that offset to end (committed or aborted; a producer that hangs holds it
// up to its transaction timeout, or the caller's ctx) and then sees every
// record committed before the call. Scan does not: a record committed
// after another producer's transaction began on its partition (the status
// topic's producers are ingest's replicas, each window one transaction,
// and the dispatchers) sits above the last stable offset until that
// transaction ends, although records written beside it in its own
// transaction to other partitions are readable already. A caller that
// proves a key has no record at all reads so.
func ScanSettled(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, key []byte, fn func(*kgo.Record) error) (ScanStats, error) {
	return scan(ctx, opts, topic, parts, toSettled, keyIs(key), fn, listStarts(ctx, topic))
}

// listStarts lists the start offsets of topic's partitions.
func listStarts(ctx context.Context, topic string) func(*kadm.Client) (kadm.ListedOffsets, error) {
	return func(ka *kadm.Client) (kadm.ListedOffsets, error) {
		starts, err := ka.ListStartOffsets(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("kafka: start offsets of %s: %w", topic, err)
		}
		return starts, nil
	}
}

// ScanFrom is Scan from the first record of each partition whose
// timestamp is at or after from, instead of from its start.
func ScanFrom(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, from time.Time, key []byte, fn func(*kgo.Record) error) (ScanStats, error) {
	return scanFrom(ctx, opts, topic, parts, from, keyIs(key), fn)
}

// ScanFromAfter is ScanFrom starting each partition of after at the
// offset it names when that is later than the first record at or after
// from: the resumption of a read that stopped at those offsets (its
// ScanStats.Reached) on the log whose id was topicID (its
// ScanStats.TopicID), as for ScanFromKeysAfter. An offset past the
// partition's last stable offset is an error (ErrOffsetsAhead).
func ScanFromAfter(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, from time.Time, topicID string, after map[int32]int64, key []byte, fn func(*kgo.Record) error) (ScanStats, error) {
	return scan(ctx, opts, topic, parts, toStable, keyIs(key), fn, func(ka *kadm.Client) (kadm.ListedOffsets, error) {
		return offsetsAfter(ctx, ka, topic, from)
	}, &resume{id: topicID, offsets: after})
}

// ScanFromKeys is ScanFrom calling fn with every data record whose key
// is one of keys (none when keys is empty): one read of the partitions
// for several keys. Unlike ScanFrom, it reads read_uncommitted up to each
// partition's high watermark: it looks for records written outside any
// transaction (the dispatcher's), which are readable once acknowledged,
// on a topic other producers write in transactions (ingest's, on the
// status topic). Read up to the last stable offset, a record of ours
// written after the first record of another producer's transaction still
// open (a producer hung or crashed mid-transaction holds it open up to its
// transaction timeout) was not read at all. fn sees the records of open
// and aborted transactions too, and must tell its own records by their
// content.
func ScanFromKeys(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, from time.Time, keys [][]byte, fn func(*kgo.Record) error) (ScanStats, error) {
	return ScanFromKeysAfter(ctx, opts, topic, parts, from, "", nil, keys, fn)
}

// ScanFromKeysAfter is ScanFromKeys starting each partition of after at
// the offset it names when that is later than the first record at or
// after from: what an earlier read, up to those offsets (its
// ScanStats.Ends), saw already is not read again. The offsets are of the
// log whose topic id was topicID (that read's ScanStats.TopicID): a topic
// deleted and made again under the same name is another log, whose
// offsets below them hold records the earlier read never saw (a
// migration's copies, new writes), and may well be past them by now. So
// after is used only when topicID is the topic's id now, and not empty
// (brokers without topic ids). The id is read again once the read is
// done: a topic made again meanwhile is an error (ErrTopicChanged: the
// read was of either log). An offset past the partition's high watermark
// is an error too (ErrOffsetsAhead): the caller's knowledge is of another
// log.
func ScanFromKeysAfter(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, from time.Time, topicID string, after map[int32]int64, keys [][]byte, fn func(*kgo.Record) error) (ScanStats, error) {
	set := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		set[string(k)] = struct{}{}
	}
	match := func(k []byte) bool {
		_, ok := set[string(k)]
		return ok
	}
	return scan(ctx, opts, topic, parts, toEnd, match, fn, func(ka *kadm.Client) (kadm.ListedOffsets, error) {
		return offsetsAfter(ctx, ka, topic, from)
	}, &resume{id: topicID, offsets: after})
}

// ErrTopicChanged: the topic's id changed while ScanFromKeysAfter read it
// (deleted and made again).
var ErrTopicChanged = errors.New("kafka: the topic was made again while it was read")

// resume is ScanFromKeysAfter's earlier read: the topic's id then, and the
// offsets it reached.
type resume struct {
	id      string
	offsets map[int32]int64
}

// topicID returns the id of topic as a broker names it now, in hex; ""
// when it gives none (all zeros: brokers before topic ids). Asked of a
// broker, not of the client's metadata cache (kadm.Metadata's), which may
// be seconds old.
func topicID(ctx context.Context, cl *kgo.Client, topic string) (string, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("kafka: metadata of %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return "", fmt.Errorf("kafka: metadata of %s: %w", topic, err)
		}
		if t.TopicID == ([16]byte{}) {
			return "", nil
		}
		return hex.EncodeToString(t.TopicID[:]), nil
	}
	return "", fmt.Errorf("kafka: metadata of %s: topic not listed", topic)
}

// checkTopicID returns ErrTopicChanged when scan was asked for the topic's
// id (res) and it is not id any more.
func checkTopicID(ctx context.Context, cl *kgo.Client, topic, id string, res ...*resume) error {
	if len(res) == 0 || res[0] == nil {
		return nil
	}
	now, err := topicID(ctx, cl, topic)
	if err != nil {
		return err
	}
	if now != id {
		return fmt.Errorf("kafka: %s: %w", topic, ErrTopicChanged)
	}
	return nil
}

// ScanFromUncommitted is ScanFromKeys for every key: it calls fn with
// every data record of parts from the first whose timestamp is at or
// after from, read_uncommitted, up to each partition's high watermark as
// of the call. fn sees the records of open and aborted transactions too,
// and must tell the records it wants by their content.
func ScanFromUncommitted(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, from time.Time, fn func(*kgo.Record) error) (ScanStats, error) {
	return scan(ctx, opts, topic, parts, toEnd, keyIs(nil), fn, func(ka *kadm.Client) (kadm.ListedOffsets, error) {
		return offsetsAfter(ctx, ka, topic, from)
	})
}

// ErrOffsetsAhead: ScanFromKeysAfter was given an offset past the end of
// its partition.
var ErrOffsetsAhead = errors.New("kafka: offsets given are past the partition's end")

// keyIs matches the records whose key equals key, or every record when
// key is nil.
func keyIs(key []byte) func([]byte) bool {
	return func(k []byte) bool { return key == nil || bytes.Equal(k, key) }
}

func scanFrom(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, from time.Time, match func([]byte) bool, fn func(*kgo.Record) error) (ScanStats, error) {
	return scan(ctx, opts, topic, parts, toStable, match, fn, func(ka *kadm.Client) (kadm.ListedOffsets, error) {
		return offsetsAfter(ctx, ka, topic, from)
	})
}

// offsetsAfter lists the offset of each partition's first record whose
// timestamp is at or after from.
func offsetsAfter(ctx context.Context, ka *kadm.Client, topic string, from time.Time) (kadm.ListedOffsets, error) {
	starts, err := ka.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of %s after %s: %w", topic, from.UTC().Format(time.RFC3339), err)
	}
	return starts, nil
}

// readTo says how far, and at which isolation level, scan reads.
type readTo int

const (
	toStable  readTo = iota // read_committed, up to the last stable offsets
	toSettled               // read_committed, up to the high watermarks (ScanSettled)
	toEnd                   // read_uncommitted, up to the high watermarks
)

// scan reads parts of topic from first's offsets up to where to says.
func scan(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, to readTo, match func([]byte) bool, fn func(*kgo.Record) error,
	first func(*kadm.Client) (kadm.ListedOffsets, error), res ...*resume) (ScanStats, error) {
	st := ScanStats{Ends: make(map[int32]int64, len(parts))}
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return st, err
	}
	defer adm.Close()
	ka := kadm.NewClient(adm)
	var after map[int32]int64
	if len(res) > 0 && res[0] != nil {
		// Read before the offsets are listed, and again after the read
		// (checkTopicID): the offsets the read reached are of that log.
		if st.TopicID, err = topicID(ctx, adm, topic); err != nil {
			return st, err
		}
		if res[0].id != "" && res[0].id == st.TopicID {
			after = res[0].offsets
		}
	}
	starts, err := first(ka)
	if err != nil {
		return st, err
	}
	for p, o := range after {
		if s, ok := starts[topic][p]; ok && s.Err == nil && o > s.Offset {
			s.Offset = o
			starts[topic][p] = s
		}
	}
	list, isolation, what := ka.ListCommittedOffsets, kgo.ReadCommitted(), "last stable offsets"
	switch to {
	case toSettled:
		// The fetches stop at the last stable offset until the
		// transactions below the high watermark end; their markers, kept,
		// then take the read to it.
		list, what = ka.ListEndOffsets, "end offsets"
	case toEnd:
		list, isolation, what = ka.ListEndOffsets, kgo.ReadUncommitted(), "end offsets"
	}
	ends, err := list(ctx, topic)
	if err != nil {
		return st, fmt.Errorf("kafka: %s of %s: %w", what, topic, err)
	}
	want := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	reached := make(map[int32]int64, len(parts))
	for _, p := range parts {
		s, ok1 := starts.Lookup(topic, p)
		e, ok2 := ends.Lookup(topic, p)
		if !ok1 || !ok2 || s.Err != nil || e.Err != nil {
			return st, fmt.Errorf("kafka: offsets of %s/%d: %w", topic, p, errors.Join(s.Err, e.Err))
		}
		if after != nil {
			if o, ok := after[p]; ok && o > e.Offset {
				return st, fmt.Errorf("kafka: %s/%d ends at %d, before offset %d an earlier read reached: %w", topic, p, e.Offset, o, ErrOffsetsAhead)
			}
		}
		st.Ends[p] = e.Offset
		reached[p] = e.Offset // nothing to read
		if e.Offset > s.Offset {
			want[p] = kgo.NewOffset().At(s.Offset)
			end[p] = e.Offset
			reached[p] = s.Offset
		}
	}
	// Reported once every partition's start is known: a scan that failed
	// on one reports none.
	st.Reached = reached
	if len(want) == 0 {
		return st, checkTopicID(ctx, adm, topic, st.TopicID, res...)
	}
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: want}),
		kgo.FetchIsolationLevel(isolation),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
	)...)
	if err != nil {
		return st, err
	}
	defer cl.Close()
	for len(end) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("kafka: reading %s stopped before its end: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("kafka: fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return st, ferr
		}
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			e, open := end[r.Partition]
			if !open || cbErr != nil {
				return
			}
			if r.Offset >= e || r.Attrs.IsControl() {
				if r.Offset >= e-1 {
					delete(end, r.Partition)
				}
				st.Reached[r.Partition] = min(r.Offset+1, e)
				return
			}
			st.Records++
			if match(r.Key) {
				if cbErr = fn(r); cbErr != nil {
					return // not read: the resumed scan starts at it
				}
			}
			if r.Offset >= e-1 {
				delete(end, r.Partition)
			}
			st.Reached[r.Partition] = r.Offset + 1
		})
		if cbErr != nil {
			return st, cbErr
		}
	}
	return st, checkTopicID(ctx, adm, topic, st.TopicID, res...)
}
