package weptest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// hookEvent is one webhook: built and signed under s.mu, sent later.
type hookEvent struct {
	url       string
	body      []byte
	signature string // the x-webhook-wp-signature value
	paymentID int64
}

// webhookBody is the event WEpayout sends [doc], in its documented order.
type webhookBody struct {
	ID           int64          `json:"id"`
	Invoice      string         `json:"invoice"`
	EndToEnd     string         `json:"end_to_end"`
	Status       map[string]any `json:"status"`
	UpdatedAt    string         `json:"updated_at"`
	StatusDetail *Detail        `json:"status_detail,omitempty"`
}

// event builds the webhook of p's current status; s.mu is held. The
// signature is SHA-256 of invoice + "BRL" + the amount exactly as it was
// sent + the API key [doc; the amount's text is ours].
func (s *Server) event(p *payment) hookEvent {
	body, _ := json.Marshal(webhookBody{
		ID: p.id, Invoice: p.invoice, EndToEnd: p.endToEnd,
		Status:       map[string]any{"id": p.status, "name": statusName(p.status)},
		UpdatedAt:    p.updatedAt.In(wepayout.SaoPaulo).Format("2006-01-02 15:04:05"),
		StatusDetail: p.detail,
	})
	return hookEvent{url: p.notificationURL, body: body, signature: "Bearer " + signature(p.invoice, "BRL", p.amountText, s.cfg.APIKey), paymentID: p.id}
}

// WebhookStats counts webhook work since New.
type WebhookStats struct {
	Queued     int64 `json:"queued"`     // events accepted for delivery (duplicates included)
	Delivered  int64 `json:"delivered"`  // answered 2xx
	Failed     int64 `json:"failed"`     // still non-2xx after every retry
	Attempts   int64 `json:"attempts"`   // POSTs made
	Dropped    int64 `json:"dropped"`    // WebhookDropRate
	Duplicated int64 `json:"duplicated"` // WebhookDuplicateRate
	Delayed    int64 `json:"delayed"`    // WebhookDelayRate
	NoURL      int64 `json:"noUrl"`      // the payment has no notification_url
}

// hookQueue delivers webhooks from a bounded pool of workers. The queue is
// unbounded so that neither the API nor Tick ever blocks on it.
type hookQueue struct {
	s  *Server
	hc *http.Client

	mu       sync.Mutex
	cond     *sync.Cond
	q        []hookEvent
	held     []hookEvent
	inflight int
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
		changed: make(chan struct{}), stopCh: make(chan struct{})}
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
		case ev.url == "":
			h.stats.NoURL++
			continue
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
		// Events held back so far now go after this one: reordered.
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

// releaseHeld queues every held-back event.
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

func (h *hookQueue) worker() {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		for len(h.q) == 0 && !h.closed {
			h.cond.Wait()
		}
		if h.closed {
			h.mu.Unlock()
			return
		}
		ev := h.q[0]
		h.q[0] = hookEvent{}
		h.q = h.q[1:]
		h.inflight++
		h.mu.Unlock()

		delivered, attempts := h.deliver(ev)

		h.mu.Lock()
		h.inflight--
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

// deliver POSTs ev, retrying a non-2xx answer or a failed connection up to
// WebhookRetries more times with a doubling backoff.
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
		req.Header.Set(wepayout.HeaderSignature, ev.signature)
		req.Header.Set("User-Agent", "wepayoutsim-webhooks/1")
		resp, err := h.hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return true, attempts
			}
			h.s.log.Info("wepayoutsim: webhook refused", "id", ev.paymentID, "status", resp.StatusCode, "attempt", attempts)
		} else {
			h.s.log.Info("wepayoutsim: webhook failed", "id", ev.paymentID, "attempt", attempts)
		}
	}
	return false, attempts
}

// wait returns once nothing is queued or in flight (held events excluded).
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

// WebhookStats returns the webhook counters.
func (s *Server) WebhookStats() WebhookStats {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return s.hooks.stats
}

// WaitWebhooks returns once every queued webhook was delivered or gave up
// (events held back by WebhookDelayRate excluded), or when ctx ends.
func (s *Server) WaitWebhooks(ctx context.Context) error { return s.hooks.wait(ctx) }

// ReleaseDelayedWebhooks queues the events held back by WebhookDelayRate
// now rather than after WebhookDelay.
func (s *Server) ReleaseDelayedWebhooks() { s.hooks.releaseHeld() }
