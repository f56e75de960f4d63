package sfptest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// hookEvent is one callback to send: its URL and body are fixed when the
// status changes; it is signed at each attempt.
type hookEvent struct {
	url      string
	body     []byte
	payoutID string
}

// transactionStatus is the transaction-level status of a callback's
// status field [doc: open|pending|paid|canceled]; which payout status gives
// which is not published [ours].
func transactionStatus(payoutStatus string) string {
	switch payoutStatus {
	case sfp.StatusPending:
		return "open"
	case sfp.StatusOnHold:
		return "pending"
	case sfp.StatusSuccess:
		return "paid"
	case sfp.StatusFailed, sfp.StatusRefunded, sfp.StatusReturned:
		return "canceled"
	}
	return "pending"
}

// callbackBody is p's callback in its current status [doc]. s.mu held.
func (s *Server) callbackBody(p *payoutRec) []byte {
	b, _ := json.Marshal(map[string]any{"requestId": s.requestID(), "data": []map[string]any{{
		"id": p.id, "customer_id": p.customerID, "transaction_id": p.txID, "amount": s.amount(p.amount),
		"status": transactionStatus(p.status), "type": "payout", "payout_status": p.status,
	}}})
	return b
}

// callbackEvent is p's callback in its current status. s.mu held.
func (s *Server) callbackEvent(p *payoutRec) hookEvent {
	return hookEvent{url: p.callback, body: s.callbackBody(p), payoutID: p.id}
}

// SignedWebhook returns the headers and body of a genuine callback for the
// last payout made for our id, in its current status, signed now
// (railtest.Sim).
func (s *Server) SignedWebhook(txID string) (http.Header, []byte, error) {
	s.mu.Lock()
	p, ok := s.latest(txID)
	var body []byte
	if ok {
		body = s.callbackBody(p)
	}
	s.mu.Unlock()
	if !ok {
		return nil, nil, ErrNoPayout
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(sfp.HeaderSignature, sfp.Sign(s.cfg.WebhookSecret, s.clock.Now(), body))
	return h, body, nil
}

// WebhookStats counts callback work since New.
type WebhookStats struct {
	Queued     int64 `json:"queued"`     // callbacks accepted for delivery (duplicates included)
	Delivered  int64 `json:"delivered"`  // answered 2xx
	Failed     int64 `json:"failed"`     // still non-2xx after every retry
	Attempts   int64 `json:"attempts"`   // POSTs made
	Dropped    int64 `json:"dropped"`    // WebhookDropRate
	Duplicated int64 `json:"duplicated"` // WebhookDuplicateRate
	Delayed    int64 `json:"delayed"`    // WebhookDelayRate
}

// hookQueue delivers callbacks from a bounded pool of workers. The queue
// itself is unbounded so that neither the API nor Tick ever blocks on it.
type hookQueue struct {
	s  *Server
	hc *http.Client

	mu       sync.Mutex
	cond     *sync.Cond
	q        []hookEvent
	held     []hookEvent
	inflight int
	busy     map[string]bool // payouts with a callback in flight
	closed   bool
	changed  chan struct{}
	stats    WebhookStats
	stopCh   chan struct{}
	wg       sync.WaitGroup
}

func newHookQueue(s *Server) *hookQueue {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = s.cfg.WebhookWorkers
	h := &hookQueue{s: s, hc: &http.Client{Timeout: s.cfg.WebhookTimeout, Transport: tr},
		changed: make(chan struct{}), stopCh: make(chan struct{}), busy: map[string]bool{}}
	h.cond = sync.NewCond(&h.mu)
	for range s.cfg.WebhookWorkers {
		h.wg.Add(1)
		go h.worker()
	}
	return h
}

// notify wakes WaitWebhooks; h.mu is held.
func (h *hookQueue) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hookQueue) enqueue(evs ...hookEvent) {
	if len(evs) == 0 {
		return
	}
	type roll struct{ drop, dup, delay bool }
	rolls := make([]roll, len(evs))
	var delayFor time.Duration
	for i := range evs {
		rolls[i].drop, rolls[i].dup, rolls[i].delay, delayFor = h.s.rollHook()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	heldBefore := len(h.held)
	for i, ev := range evs {
		r := rolls[i]
		switch {
		case r.drop:
			h.stats.Dropped++
			continue
		case r.delay:
			h.stats.Delayed++
			h.held = append(h.held, ev)
			continue
		}
		h.q = append(h.q, ev)
		h.stats.Queued++
		if r.dup {
			h.stats.Duplicated++
			h.stats.Queued++
			h.q = append(h.q, ev)
		}
		// Callbacks held back so far now go after this one: reordered.
		if len(h.held) > 0 {
			h.q = append(h.q, h.held...)
			h.stats.Queued += int64(len(h.held))
			h.held = h.held[:0]
		}
	}
	if len(h.held) > heldBefore {
		time.AfterFunc(delayFor, h.releaseHeld)
	}
	h.cond.Broadcast()
	h.notify()
}

// releaseHeld queues every held-back callback.
func (h *hookQueue) releaseHeld() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || len(h.held) == 0 {
		return
	}
	h.q = append(h.q, h.held...)
	h.stats.Queued += int64(len(h.held))
	h.held = nil
	h.cond.Broadcast()
	h.notify()
}

// next returns the index of the first queued callback whose payout has
// none in flight, -1 if none: one payout's callbacks go out in order
// (WebhookDelayRate is the only reordering). h.mu held.
func (h *hookQueue) next() int {
	for i, ev := range h.q {
		if !h.busy[ev.payoutID] {
			return i
		}
	}
	return -1
}

func (h *hookQueue) worker() {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		i := h.next()
		for i < 0 && !h.closed {
			h.cond.Wait()
			i = h.next()
		}
		if h.closed {
			h.mu.Unlock()
			return
		}
		ev := h.q[i]
		h.q = append(h.q[:i], h.q[i+1:]...)
		h.inflight++
		h.busy[ev.payoutID] = true
		h.mu.Unlock()

		delivered, attempts := h.deliver(ev)

		h.mu.Lock()
		h.inflight--
		delete(h.busy, ev.payoutID)
		h.cond.Broadcast()
		h.stats.Attempts += attempts
		if delivered {
			h.stats.Delivered++
		} else {
			h.stats.Failed++
		}
		h.notify()
		h.mu.Unlock()
	}
}

// deliver POSTs ev, retrying a non-2xx or a transport failure
// WebhookRetries times with a doubling backoff. Each attempt is signed
// afresh, so t changes between retries [ours: not published].
func (h *hookQueue) deliver(ev hookEvent) (delivered bool, attempts int64) {
	backoff := h.s.cfg.WebhookBackoff
	for i := 0; i <= h.s.cfg.WebhookRetries; i++ {
		if i > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-h.stopCh:
				t.Stop()
				return false, attempts
			}
			backoff *= 2
		}
		attempts++
		req, err := http.NewRequest(http.MethodPost, ev.url, bytes.NewReader(ev.body))
		if err != nil {
			return false, attempts
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(sfp.HeaderSignature, sfp.Sign(h.s.cfg.WebhookSecret, h.s.clock.Now(), ev.body))
		req.Header.Set("User-Agent", "smartfastpaysim-callbacks/1")
		resp, err := h.hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return true, attempts
			}
			h.s.log.Info("smartfastpaysim: callback refused", "payoutId", ev.payoutID, "status", resp.StatusCode, "attempt", attempts)
		} else {
			h.s.log.Info("smartfastpaysim: callback failed", "payoutId", ev.payoutID, "attempt", attempts)
		}
	}
	return false, attempts
}

// wait returns once nothing is queued or in flight (held callbacks
// excluded).
func (h *hookQueue) wait(ctx context.Context) error {
	for {
		h.mu.Lock()
		if (len(h.q) == 0 && h.inflight == 0) || h.closed {
			h.mu.Unlock()
			return nil
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (h *hookQueue) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.stopCh)
	h.cond.Broadcast()
	h.notify()
	h.mu.Unlock()
	h.wg.Wait()
}

// WebhookStats returns the callback counters.
func (s *Server) WebhookStats() WebhookStats {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.stats
}

// WaitWebhooks returns once every queued callback was delivered or gave up
// (callbacks held back by WebhookDelayRate excluded), or when ctx ends.
func (s *Server) WaitWebhooks(ctx context.Context) error { return s.hooks.wait(ctx) }

// ReleaseDelayedWebhooks queues the callbacks held back by
// WebhookDelayRate now rather than after WebhookDelay.
func (s *Server) ReleaseDelayedWebhooks() { s.hooks.releaseHeld() }
