package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
// missing topic) waits the grace.
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
// upgrading.

// startRecord is the value of a start record: who started, for people
// reading the topic. Only the record's existence and offset matter.
type startRecord struct {
	Instance  string    `json:"instance"`
	Boot      string    `json:"boot"`
	StartedAt time.Time `json:"startedAt"`
}

// startPos is where this process's start record landed.
type startPos struct {
	partition int32
	offset    int64
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
	v, err := json.Marshal(startRecord{Instance: e.cfg.InstanceID, Boot: e.boot, StartedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	topic := e.cfg.Topics.DispatcherStarts
	r, err := e.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(e.cfg.InstanceID + "/" + e.boot), Value: v}).First()
	if err != nil {
		return fmt.Errorf("dispatch: write this process's start record to %s (TOPIC_DISPATCHER_STARTS): %w", topic, err)
	}
	e.started.Store(&startPos{partition: r.Partition, offset: r.Offset})
	return nil
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
