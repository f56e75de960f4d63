package dispatch

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A fresh Redis and a lost one look the same: neither holds an epoch. A
// recovery waits out RecoveryGrace plus a renewal interval and the lease
// fence's slack (recoveryWait)
// so that every POST begun before a loss, or before its job's renewal
// noticed it, has landed (or failed) before the index is rebuilt from
// the rails' listings. Only a POST can be in flight, and only after a claim, so the wait is needed
// only where some dispatcher may have claimed against the Redis that was
// lost.
//
// Each dispatcher process therefore writes one start record to
// Topics.DispatcherStarts, acknowledged by every in-sync replica, before
// it can claim anything: ensureEpoch calls announce before it hands out an
// epoch, and a claim needs an epoch. A recovery skips the grace only when
//   - this process has never been handed an epoch (it has claimed nothing
//     itself), and
//   - the topic's end offsets, read after the recovery wrote its epoch,
//     count exactly one record ever written: this process's, at offset 0;
//   - the dispatchers' consumer group has committed no offset: no
//     dispatcher, of this version or an earlier one, has ever finished a
//     batch (noCommits).
//
// A process that claimed against the lost Redis wrote its record before
// that claim, so before the loss, so before the recovery read the end
// offsets; a high watermark never moves back, and retention does not lower
// it. Anything else (another record, a second copy of ours, an error, a
// missing topic, a topic id other than the one read when our record was
// written: the topic deleted and made again, its offset 0 another
// process's) waits the grace.
//
// A dispatcher of a version from before the start records writes none, nor
// does one given another TOPIC_DISPATCHER_STARTS. So the recovery also
// rebuilds the index first, and skips the grace only if no rail lists a
// payout in the dedupe window (recover); and since a single-payout POST
// in flight may land after its rail was listed, the recovery then sets a
// key that lives for the grace it skipped (store.graceKey, on Redis's
// clock), and a single-payout job waits out its life before it looks
// anyone up (runSingle): the skip is for Wompi batches only. What would
// still defeat it: a dispatcher that writes no start record (the previous
// version, the topic deleted and re-created, a deposed Kafka leader
// answering with an old high watermark) and has never finished a batch
// under the group, with its first batch's POST in flight at the Redis loss
// (a Wompi one, or a single-payout one whose requestId a Wompi batch then
// carries too). The operations guide says to seed the topic when
// upgrading. A program that created the Kafka cluster and the Redis
// itself moments before (Config.FreshKafka: the local run) knows no such
// dispatcher can exist: its first start waits on no rail, and its epoch is
// complete at once.

// startRecord is the value of a start record: who started, and the rails
// it pays through. For the first start, only the record's existence and
// offset matter; a recovery lists every rail any start record names
// (missingRails).
type startRecord struct {
	Instance  string      `json:"instance"`
	Boot      string      `json:"boot"`
	StartedAt time.Time   `json:"startedAt"`
	Rails     []rail.Name `json:"rails,omitempty"`
	// The timings that bound how late this process's POSTs may land
	// (WOMPI_HTTP_TIMEOUT, RECOVERY_GRACE, DISPATCHER_LEASE_TTL), in
	// milliseconds; a process that waits for another's POSTs waits the
	// longest any live process's timings need (peerWaits). Records of
	// versions that wrote none count as this process's own.
	HTTPTimeoutMs   int64 `json:"httpTimeoutMs,omitempty"`
	RecoveryGraceMs int64 `json:"recoveryGraceMs,omitempty"`
	LeaseTTLMs      int64 `json:"leaseTtlMs,omitempty"`
	// RedisPrefix is this process's REDIS_PREFIX (nil in records of
	// versions that wrote none): every replica of one group must keep its
	// state under the same one (prefixMismatch).
	RedisPrefix *string `json:"redisPrefix,omitempty"`
}

// payRails are the rails this process pays through, in a stable order.
func (e *Engine) payRails() []rail.Name {
	return append([]rail.Name{rail.Wompi}, slices.Sorted(maps.Keys(e.cfg.Singles))...)
}

// missingRails returns the single-payout rails that a start record on
// Topics.DispatcherStarts names and this process cannot list (it has no
// client for them) and that are not retired (Config.RetiredRails). A
// recovery that lists only the rails it knows would leave a requestId paid
// on another one free for a copy on its own rails (a replica started
// before that rail's credentials reached it, in a rolling change of
// configuration): it must be run by a replica that has them. A start
// record comes before any claim of its process, so before a loss that
// claim could precede, so before this read. Records of versions that wrote
// no rails name none.
//
// unlisted are the retired rails this process cannot list that a live
// dispatcher still pays through: a start record written in the last
// railsEvery and an hour names them (a rolling change of
// DISPATCHER_RETIRED_RAILS, or a replica that still holds the rail's
// credentials). A recovery may run without listing them, but its epoch
// proves no payee new (newPayeeProof): that dispatcher would post a copy
// of a request it paid before the loss, on the rail itself, without a
// lookup.
func (e *Engine) missingRails(ctx context.Context) (missing, unlisted []rail.Name, err error) {
	if len(e.cfg.Singles) == len(rail.Names)-1 {
		return nil, nil, nil // this process lists every rail there is
	}
	named, live := map[rail.Name]bool{}, map[rail.Name]bool{}
	since := time.Now().Add(-e.railsEvery - time.Hour)
	if err := e.readStarts(ctx, func(sr *startRecord) {
		for _, n := range sr.Rails {
			named[n] = true
			live[n] = live[n] || !sr.StartedAt.Before(since)
		}
	}); err != nil {
		return nil, nil, err
	}
	for _, n := range slices.Sorted(maps.Keys(named)) {
		if n == rail.Wompi || e.cfg.Singles[n] != nil {
			continue
		}
		switch {
		case !slices.Contains(e.cfg.RetiredRails, n):
			missing = append(missing, n)
		case live[n]:
			unlisted = append(unlisted, n)
		}
	}
	return missing, unlisted, nil
}

// peerWaits returns how long to wait for POSTs another dispatcher may have
// in flight: after a Redis loss (recovery) and before looking up the
// payees of a batch another attempt was posting (takeover). Each is the
// longest that this process's timings or those of any start record
// written in the last railsEvery and an hour need (a live process writes
// one at least that often; a process dead for longer has no POST in
// flight). Replicas with different WOMPI_HTTP_TIMEOUT, RECOVERY_GRACE or
// DISPATCHER_LEASE_TTL (a rolling change) each wait for the slowest: from
// its own timings alone, a replica with shorter ones looked a payee up
// before a slower replica's POST landed, and paid it again.
func (e *Engine) peerWaits(ctx context.Context) (recovery, takeover time.Duration, err error) {
	recovery, takeover = e.waitsOf(e.cfg.HTTPTimeout, e.cfg.RecoveryGrace, e.cfg.LeaseTTL)
	since := time.Now().Add(-e.railsEvery - time.Hour)
	if err := e.readStarts(ctx, func(sr *startRecord) {
		if sr.StartedAt.Before(since) || sr.HTTPTimeoutMs <= 0 || sr.RecoveryGraceMs <= 0 || sr.LeaseTTLMs <= 0 {
			return
		}
		rw, tw := e.waitsOf(time.Duration(sr.HTTPTimeoutMs)*time.Millisecond, time.Duration(sr.RecoveryGraceMs)*time.Millisecond,
			time.Duration(sr.LeaseTTLMs)*time.Millisecond)
		recovery, takeover = max(recovery, rw), max(takeover, tw)
	}); err != nil {
		return 0, 0, err
	}
	return recovery, takeover, nil
}

// readStarts calls each with every readable start record on
// Topics.DispatcherStarts, read to its end offsets.
func (e *Engine) readStarts(ctx context.Context, each func(*startRecord)) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	topic := e.cfg.Topics.DispatcherStarts
	parts, err := e.partitions(ctx, topic, "TOPIC_DISPATCHER_STARTS")
	if err != nil {
		return err
	}
	if _, err := events.Scan(ctx, e.readOpts(), topic, parts, nil, func(r *kgo.Record) error {
		var sr startRecord
		if json.Unmarshal(r.Value, &sr) == nil {
			each(&sr)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("dispatch: read the start records on %s (TOPIC_DISPATCHER_STARTS): %w", topic, err)
	}
	return nil
}

// partitions lists the partitions of topic (env names its setting).
func (e *Engine) partitions(ctx context.Context, topic, env string) ([]int32, error) {
	ends, err := kadm.NewClient(e.cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dispatch: list the partitions of %s (%s): %w", topic, env, err)
	}
	return slices.Sorted(maps.Keys(ends[topic])), nil
}

// waitsOf returns, for a process with these timings, recoveryWait's wait
// and a takeover's (recoveryWait, and at least its grace plus its lease).
func (e *Engine) waitsOf(httpTimeout, grace, lease time.Duration) (recovery, takeover time.Duration) {
	recovery = grace + renewEvery(lease) + grace - httpTimeout
	return recovery, max(grace+lease, recovery)
}

// railsRecordEvery is how often a running dispatcher writes its start
// record again: a recovery must see the rails of every process that may
// have paid within the dedupe window, and a long-lived process's first
// record may be older than the topic's retention. The topic must keep
// records for DEDUPE_WINDOW plus this (checkStartsTopic).
const railsRecordEvery = 24 * time.Hour

// announceRetryEvery is how soon a daily start record that could not be
// written is tried again (keepAnnouncing).
const announceRetryEvery = time.Minute

// keepAnnouncing writes this process's record again every railsEvery
// until ctx ends. A rewrite that fails is tried again every announceRetry
// until one lands: waited out to the next day, a brokers' hiccup at the
// daily tick left this process without a record of the last day, and a
// recovery after a Redis loss waited only the other processes' timings
// (peerWaits), however longer its own POSTs may take.
func (e *Engine) keepAnnouncing(ctx context.Context) {
	wait := e.railsEvery
	for sleep(ctx, wait) == nil {
		wait = e.railsEvery
		if err := e.writeStart(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = min(e.announceRetry, e.railsEvery)
			e.m.startRewrites.Inc()
			e.log.Error("dispatch: write the daily start record (the rails and timings this process pays with); tried again", "in", wait, "err", err)
		}
	}
}

// checkStartsTopic says, once at start, what would make a recovery after a
// Redis loss unsafe or impossible on Topics.DispatcherStarts: a retention
// shorter than DEDUPE_WINDOW plus a day (a process's rails could be
// forgotten while what it paid is still in the window), or records this
// process cannot read (a Read ACL). Both are logged as errors. It then
// compares REDIS_PREFIX with the other processes' (checkPrefixes) at once
// and every prefixEvery until ctx ends.
func (e *Engine) checkStartsTopic(ctx context.Context) {
	// Not at once: a process starting is busy enough, and nothing here is
	// needed before a Redis loss.
	if sleep(ctx, 10*time.Second) != nil {
		return
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	topic := e.cfg.Topics.DispatcherStarts
	if kept, ok := e.retention(ctx, topic); ok && kept >= 0 && kept < e.cfg.DedupeWindow+railsRecordEvery {
		e.log.Error("dispatch: the start records' topic keeps records for less than DEDUPE_WINDOW plus a day: "+
			"a recovery after a Redis loss may forget a rail a dispatcher paid through, and a replica without it could let a copy be paid twice; "+
			"set retention.ms=-1 on the topic", "topic", topic, "retention", kept, "need", e.cfg.DedupeWindow+railsRecordEvery)
	}
	if kept, ok := e.retention(ctx, e.cfg.Topics.Status); ok && kept >= 0 && kept < e.cfg.DedupeWindow {
		e.log.Error("dispatch: the status topic keeps records for less than DEDUPE_WINDOW: a recovery after a Redis loss finds no REJECTED "+
			"older than the retention, and a copy of a request refused before it, sent again after the loss, is paid; "+
			"set the topic's retention.ms to at least DEDUPE_WINDOW", "topic", e.cfg.Topics.Status, "retention", kept, "need", e.cfg.DedupeWindow)
	}
	if why := e.sizeBound(ctx, e.cfg.Topics.Status); why != "" {
		e.log.Error("dispatch: the status topic may drop records before its retention.ms ("+why+"): a recovery after a Redis loss finds no REJECTED "+
			"dropped, and a copy of a request refused before, sent again after the loss, is paid; keep every record for DEDUPE_WINDOW",
			"topic", e.cfg.Topics.Status)
	}
	if _, _, err := e.missingRails(ctx); err != nil {
		e.log.Error("dispatch: cannot read the start records: a recovery after a Redis loss will fail until this is fixed (the dispatcher needs Read on the topic)",
			"topic", topic, "err", err)
	}
	e.checkPrefixes(ctx)
	cancel()
	e.keepCheckingPrefixes(outer)
}

// retention reads topic's retention.ms (-1: kept for good); ok is false
// when it cannot be read, which is logged.
func (e *Engine) retention(ctx context.Context, topic string) (kept time.Duration, ok bool) {
	cfg, ok := e.topicConfigs(ctx, topic)
	if !ok {
		return 0, false
	}
	ms, err := strconv.ParseInt(cfg["retention.ms"], 10, 64)
	if err != nil {
		return 0, false
	}
	if ms < 0 {
		return -1, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// sizeBound says what else than retention.ms may drop topic's records
// sooner: a retention.bytes (a size per partition) or compaction (only the
// last record of a key is kept); "" when neither, or when unknown.
func (e *Engine) sizeBound(ctx context.Context, topic string) string {
	cfg, ok := e.topicConfigs(ctx, topic)
	if !ok {
		return ""
	}
	var why []string
	if b, err := strconv.ParseInt(cfg["retention.bytes"], 10, 64); err == nil && b >= 0 {
		why = append(why, "retention.bytes="+cfg["retention.bytes"])
	}
	if strings.Contains(cfg["cleanup.policy"], "compact") {
		why = append(why, "cleanup.policy="+cfg["cleanup.policy"])
	}
	return strings.Join(why, ", ")
}

// topicConfigs reads topic's configs; ok is false when they cannot be
// read, which is logged.
func (e *Engine) topicConfigs(ctx context.Context, topic string) (map[string]string, bool) {
	cfgs, err := kadm.NewClient(e.cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		e.log.Warn("dispatch: cannot read a topic's configs", "topic", topic, "err", err)
		return nil, false
	}
	rc, err := cfgs.On(topic, nil)
	if err != nil || rc.Err != nil {
		e.log.Warn("dispatch: cannot read a topic's configs", "topic", topic, "err", errors.Join(err, rc.Err))
		return nil, false
	}
	out := make(map[string]string, len(rc.Configs))
	for _, c := range rc.Configs {
		if c.Value != nil {
			out[c.Key] = *c.Value
		}
	}
	return out, true
}

// prefixCheckEvery is how often a running dispatcher reads the start
// records again for another REDIS_PREFIX (checkPrefixes): a replica
// started later with another prefix raises the gauge of every replica
// within this, and one fixed (restarted with this prefix) clears it.
const prefixCheckEvery = time.Hour

// keepCheckingPrefixes runs checkPrefixes every prefixEvery until ctx
// ends.
func (e *Engine) keepCheckingPrefixes(ctx context.Context) {
	t := time.NewTicker(e.prefixEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			e.checkPrefixes(cctx)
			cancel()
		}
	}
}

// checkPrefixes says whether the last start record of another process,
// written in the last railsEvery and an hour (so by a process that may
// still run), names another REDIS_PREFIX than this process's. Replicas of
// one group that keep their state apart see neither each other's claims
// nor each other's duplicate index: a batch moved between them at a
// rebalance is claimed afresh, and a single-payout payee the other replica
// paid is proven new and posted again. It is logged as an error and raises
// payouts_dispatcher_peer_redis_prefix_mismatch; claiming goes on, since a
// deliberate change of prefix leaves the old records for a day. A process
// whose last record names this prefix (restarted with it) no longer
// counts. A topic that cannot be read leaves the gauge as it was.
func (e *Engine) checkPrefixes(ctx context.Context) {
	since := time.Now().Add(-e.railsEvery - time.Hour)
	last := map[string]*startRecord{} // instance -> its latest record
	if err := e.readStarts(ctx, func(sr *startRecord) {
		if l := last[sr.Instance]; l == nil || !sr.StartedAt.Before(l.StartedAt) {
			last[sr.Instance] = sr
		}
	}); err != nil {
		e.log.Warn("dispatch: cannot read the start records to compare REDIS_PREFIX", "err", err)
		return
	}
	others := map[string]string{} // instance -> prefix
	for inst, sr := range last {
		if sr.RedisPrefix != nil && *sr.RedisPrefix != e.cfg.Prefix && !sr.StartedAt.Before(since) {
			others[inst] = *sr.RedisPrefix
		}
	}
	if len(others) == 0 {
		e.m.prefixMismatch.Set(0)
		return
	}
	e.m.prefixMismatch.Set(1)
	e.log.Error("dispatch: another dispatcher of this deployment started in the last day with another REDIS_PREFIX: "+
		"replicas that keep their state apart can pay a payee twice; give every replica the same REDIS_PREFIX and Redis",
		"redis_prefix", e.cfg.Prefix, "others", others)
}

// readOpts are the base options of a short-lived client (Config.ReadKafka).
func (e *Engine) readOpts() []kgo.Opt {
	if e.cfg.ReadKafka != nil {
		return e.cfg.ReadKafka
	}
	return e.cfg.Kafka
}

// startPos is where this process's start record landed.
type startPos struct {
	partition int32
	offset    int64
}

// startsTopicID reads the id (hex) of Topics.DispatcherStarts from a
// broker (not from the client's cached metadata, which may still be the
// old log's); "" when the brokers give none or it cannot be read.
func (e *Engine) startsTopicID(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topic := e.cfg.Topics.DispatcherStarts
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, e.cl)
	if err != nil {
		return ""
	}
	for _, t := range resp.Topics {
		if t.Topic != nil && *t.Topic == topic && t.ErrorCode == 0 && t.TopicID != ([16]byte{}) {
			return hex.EncodeToString(t.TopicID[:])
		}
	}
	return ""
}

// announce writes this process's start record once, and returns at once
// once it is written. It returns an error while it cannot be written; the
// process then claims nothing.
func (e *Engine) announce(ctx context.Context) error {
	if e.started.Load() != nil {
		return nil
	}
	e.startMu.Lock()
	defer e.startMu.Unlock()
	if e.started.Load() != nil {
		return nil
	}
	// The topic's id is read before the record is written: should the
	// topic be made again in between, the id is the old log's, and no
	// first start is taken from the new one (firstStart). Only when it
	// cannot be read before (a topic the write creates) is it read after.
	id := e.startsTopicID(ctx)
	r, err := e.writeStartRecord(ctx)
	if err != nil {
		return err
	}
	if id == "" {
		id = e.startsTopicID(ctx)
	}
	e.startedTopic = id // before started: read once started is
	e.started.Store(&startPos{partition: r.Partition, offset: r.Offset})
	return nil
}

// writeStart writes a start record (announce, keepAnnouncing).
func (e *Engine) writeStart(ctx context.Context) error {
	_, err := e.writeStartRecord(ctx)
	return err
}

func (e *Engine) writeStartRecord(ctx context.Context) (*kgo.Record, error) {
	v, err := json.Marshal(startRecord{Instance: e.cfg.InstanceID, Boot: e.boot, StartedAt: time.Now().UTC(), Rails: e.payRails(),
		HTTPTimeoutMs: e.cfg.HTTPTimeout.Milliseconds(), RecoveryGraceMs: e.cfg.RecoveryGrace.Milliseconds(), LeaseTTLMs: e.cfg.LeaseTTL.Milliseconds(),
		RedisPrefix: &e.cfg.Prefix})
	if err != nil {
		return nil, err
	}
	topic := e.cfg.Topics.DispatcherStarts
	// A shutdown while the brokers do not answer stops waiting for them
	// (produceSync): no claim is made before this record is written.
	pctx, cancel := context.WithTimeout(ctx, e.produceTimeout)
	defer cancel()
	res, _ := e.produceSync(pctx, ctx, &kgo.Record{Topic: topic, Key: []byte(e.cfg.InstanceID + "/" + e.boot), Value: v})
	r, err := res.First()
	if err != nil {
		return nil, fmt.Errorf("dispatch: write this process's start record to %s (TOPIC_DISPATCHER_STARTS): %w", topic, err)
	}
	return r, nil
}

// announceBeforeConsuming retries announce until it succeeds or ctx ends,
// so that a dispatcher that cannot write its start record says so at once
// rather than at its first batch.
func (e *Engine) announceBeforeConsuming(ctx context.Context) {
	for wait := e.cfg.RetryBase; ; wait = min(2*wait, e.cfg.RetryMax) {
		err := e.announce(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		e.log.Error("dispatch: cannot write the start record; claiming nothing until it is written", "err", err)
		if sleep(ctx, wait) != nil {
			return
		}
	}
}

// firstStart reports whether the recovery running now may skip the grace
// (see the top of this file), and if not, why.
func (e *Engine) firstStart(ctx context.Context) (bool, string) {
	if e.hadEpoch.Load() {
		return false, "this process has claimed under an earlier epoch"
	}
	mine := e.started.Load()
	if mine == nil {
		return false, "this process has no start record"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topic := e.cfg.Topics.DispatcherStarts
	adm := kadm.NewClient(e.cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if ok, why := onlyStart(*mine, topic, ends, err); !ok {
		return false, why
	}
	// The log this process's record went to must be the topic's still: a
	// topic deleted and made again holds another process's record at
	// offset 0, which may have claimed against the lost Redis.
	if was := e.startedTopic; was != "" {
		if now := e.startsTopicID(ctx); now != was {
			return false, fmt.Sprintf("%s is not the log this process's start record went to (topic id %q, now %q): made again since", topic, was, now)
		}
	}
	offs, err := adm.FetchOffsets(ctx, e.cfg.Group)
	return noCommits(e.cfg.Group, offs, err)
}

// noCommits reports whether the dispatchers' consumer group, as
// FetchOffsets answered for it, has committed no offset: no dispatcher of
// any version has finished a batch under it. A group that has is not on
// its first start, whatever the start records say: a dispatcher of a
// version from before them writes none, and during a rolling upgrade it
// shares the group. Any error means it may have.
func noCommits(group string, offs kadm.OffsetResponses, err error) (bool, string) {
	if err != nil {
		return false, "fetch the committed offsets of group " + group + ": " + err.Error()
	}
	if err := offs.Error(); err != nil {
		return false, "committed offsets of group " + group + ": " + err.Error()
	}
	n := 0
	for _, ps := range offs {
		for _, o := range ps {
			if o.At >= 0 {
				n++
			}
		}
	}
	if n > 0 {
		return false, fmt.Sprintf("group %s has committed offsets on %d partitions: dispatchers have finished batches before", group, n)
	}
	return true, ""
}

// onlyStart reports whether the end offsets of topic, as ListEndOffsets
// returned them, count one record ever written, the one at mine. A
// partition whose leader could not be asked is missing from ends and
// reported in err.
func onlyStart(mine startPos, topic string, ends kadm.ListedOffsets, err error) (bool, string) {
	if err != nil {
		return false, "list the end offsets of " + topic + ": " + err.Error()
	}
	if err := ends.Error(); err != nil {
		return false, "end offsets of " + topic + ": " + err.Error()
	}
	parts, ok := ends[topic]
	if !ok || len(parts) == 0 {
		return false, "no end offsets for " + topic
	}
	var total int64
	for _, o := range parts {
		total += o.Offset
	}
	if mine.offset != 0 || parts[mine.partition].Offset != 1 || total != 1 {
		return false, fmt.Sprintf("%s holds %d records ever written; this process's is at offset %d", topic, total, mine.offset)
	}
	return true, ""
}
