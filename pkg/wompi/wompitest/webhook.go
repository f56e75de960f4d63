package wompitest

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// hookEvent is one webhook to send; data is built under s.mu, signed at
// delivery.
type hookEvent struct {
	name  string
	data  any
	props []string
	at    time.Time
	key   string
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
	NoURL      int64 `json:"noUrl"`      // no URL configured when due
}

// hookQueue delivers webhooks from a bounded pool of workers. The queue
// itself is unbounded so that neither the API nor Tick ever blocks on it.
type hookQueue struct {
	s      *Server
	hc     *http.Client
	secret string

	mu       sync.Mutex
	cond     *sync.Cond
	url      string
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
	h := &hookQueue{s: s, secret: s.cfg.EventsSecret, hc: &http.Client{Timeout: s.cfg.WebhookTimeout, Transport: tr},
		changed: make(chan struct{}), stopCh: make(chan struct{})}
	h.cond = sync.NewCond(&h.mu)
	for range s.cfg.WebhookWorkers {
		h.wg.Add(1)
		go h.worker()
	}
	return h
}

func (h *hookQueue) setURL(u string) {
	h.mu.Lock()
	h.url = u
	h.mu.Unlock()
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
		url := h.url
		h.mu.Unlock()

		delivered, failed, noURL, attempts := h.deliver(url, ev)

		h.mu.Lock()
		h.inflight--
		h.stats.Attempts += attempts
		switch {
		case delivered:
			h.stats.Delivered++
		case failed:
			h.stats.Failed++
		case noURL:
			h.stats.NoURL++
		}
		h.notify()
		h.mu.Unlock()
	}
}

func (h *hookQueue) deliver(url string, ev hookEvent) (delivered, failed, noURL bool, attempts int64) {
	if url == "" {
		return false, false, true, 0
	}
	body, sum, err := wompi.SignEvent(ev.name, ev.data, ev.props, ev.at, h.secret)
	if err != nil {
		h.s.log.Error("wompisim: sign webhook", "event", ev.name, "err", err)
		return false, true, false, 0
	}
	backoff := h.s.cfg.WebhookBackoff
	for i := 0; i <= h.s.cfg.WebhookRetries; i++ {
		if i > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-h.stopCh:
				t.Stop()
				return false, true, false, attempts
			}
			backoff *= 2
		}
		attempts++
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return false, true, false, attempts
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(wompi.HeaderEventChecksum, sum)
		req.Header.Set("User-Agent", "wompisim-webhooks/1")
		resp, err := h.hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return true, false, false, attempts
			}
			h.s.log.Info("wompisim: webhook refused", "event", ev.name, "status", resp.StatusCode, "attempt", attempts)
		} else {
			h.s.log.Info("wompisim: webhook failed", "event", ev.name, "err", err, "attempt", attempts)
		}
	}
	return false, true, false, attempts
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

// SetWebhookURL sets (or, with "", clears) where webhooks go.
func (s *Server) SetWebhookURL(url string) { s.hooks.setURL(url) }

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
