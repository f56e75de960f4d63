package events

import (
	"encoding/binary"
	"fmt"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Every request gets at least two PayoutStatusChanged records (BATCHED,
// SUBMITTED), so their encoding is on the hot path. appendStatusChangeFast
// writes schemas/PayoutStatusChanged.avsc field by field, the same bytes as
// hamba (TestFastStatusChangeMatchesHamba holds it to that), without
// reflection or allocation.

var statusIndex = func() map[payout.Status]int64 {
	m := map[payout.Status]int64{}
	for i, s := range payout.Statuses {
		m[s] = int64(i)
	}
	return m
}()

var sourceIndex = map[payout.Source]int64{payout.SourceIngest: 0, payout.SourceDispatcher: 1, payout.SourceWebhook: 2, payout.SourcePoll: 3}

func appendLong(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64(v<<1)^uint64(v>>63))
}

func appendString(b []byte, s string) []byte {
	b = appendLong(b, int64(len(s)))
	return append(b, s...)
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, 0) // union branch 0: null
	}
	b = append(b, 2) // union branch 1, zigzag-encoded
	return appendString(b, *s)
}

func appendStatusChangeFast(b []byte, s *payout.StatusChange) ([]byte, error) {
	st, ok := statusIndex[s.Status]
	if !ok {
		return nil, fmt.Errorf("events: encode PayoutStatusChanged: unknown status %q", truncateForError(string(s.Status)))
	}
	src, ok := sourceIndex[s.Source]
	if !ok {
		return nil, fmt.Errorf("events: encode PayoutStatusChanged: unknown source %q", truncateForError(string(s.Source)))
	}
	b = appendString(b, s.EventID)
	b = appendString(b, s.RequestID)
	b = appendOptString(b, s.BatchID)
	b = appendOptString(b, s.PayoutID)
	b = appendOptString(b, s.TransactionID)
	b = appendLong(b, st)
	if s.PreviousStatus == nil {
		b = append(b, 0)
	} else {
		prev, ok := statusIndex[*s.PreviousStatus]
		if !ok {
			return nil, fmt.Errorf("events: encode PayoutStatusChanged: unknown previous status %q", truncateForError(string(*s.PreviousStatus)))
		}
		b = append(b, 2)
		b = appendLong(b, prev)
	}
	b = appendOptString(b, s.ReasonCode)
	b = appendOptString(b, s.ReasonMessage)
	b = appendLong(b, s.AmountInCents)
	b = appendString(b, s.OriginAccountID)
	b = appendLong(b, s.OccurredAt.UnixMilli())
	b = appendLong(b, src)
	b = appendOptString(b, s.Rail)
	return b, nil
}

func truncateForError(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}

// statusOptionals holds what the optional fields of one decoded event
// point to.
type statusOptionals struct {
	s    [6]string
	prev payout.Status
}

// sourceSyms is the Source enum of the schema, in order.
var sourceSyms = [...]payout.Source{payout.SourceIngest, payout.SourceDispatcher, payout.SourceWebhook, payout.SourcePoll}

// decodeStatusChangeFast decodes body, written with the current
// PayoutStatusChanged schema, into s (already reset by the caller): what a
// consumer of the status topic (the load run's tally, payoutsctl trace and
// reconcile) reads for every event. Same result as hamba (FuzzFastStatus
// holds it to that), without reflection, and the event's strings share one
// allocation.
func decodeStatusChangeFast(body []byte, s *payout.StatusChange) error {
	if len(body) == 0 {
		return errFastTruncated
	}
	rd := fastReader{b: body, str: string(body)}
	// The optional fields point into one allocation.
	var opt *statusOptionals
	str := func(i int) *string {
		if !rd.union() {
			return nil
		}
		if opt == nil {
			opt = new(statusOptionals)
		}
		opt.s[i] = rd.string()
		return &opt.s[i]
	}
	s.EventID = rd.string()
	s.RequestID = rd.string()
	s.BatchID = str(0)
	s.PayoutID = str(1)
	s.TransactionID = str(2)
	s.Status = payout.Statuses[rd.enumIndex(len(payout.Statuses))]
	if rd.union() {
		if opt == nil {
			opt = new(statusOptionals)
		}
		opt.prev = payout.Statuses[rd.enumIndex(len(payout.Statuses))]
		s.PreviousStatus = &opt.prev
	}
	s.ReasonCode = str(3)
	s.ReasonMessage = str(4)
	s.AmountInCents = rd.long()
	s.OriginAccountID = rd.string()
	s.OccurredAt = rd.millis()
	s.Source = sourceSyms[rd.enumIndex(len(sourceSyms))]
	s.Rail = str(5)
	if rd.err != nil {
		return rd.err
	}
	if rd.pos != len(body) {
		return errTrailing
	}
	return nil
}
