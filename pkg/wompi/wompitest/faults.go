package wompitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Faults are the fault-injection knobs. Every roll uses one math/rand/v2
// generator seeded by Config.Seed, so a run with the same seed and the same
// sequence of calls injects the same faults. Change them at run time with
// SetFaults or POST /_sim/faults.
type Faults struct {
	// ErrorRate is the probability that an API call (except /health) is
	// answered 503 SERVICE_UNAVAILABLE before anything happens.
	ErrorRate float64
	// TooManyRequestsRate is the probability of a 429 TOO_MANY_REQUESTS,
	// before anything happens [ours].
	TooManyRequestsRate float64
	// Latency delays every API call, plus a uniform jitter in
	// [0, LatencyJitter). A client that gives up earlier sees a timeout.
	Latency, LatencyJitter time.Duration
	// DropResponseRate is the probability that POST /payouts or
	// /payouts/file COMMITS the batch and then loses the answer: the handler
	// aborts (http.ErrAbortHandler) and the connection is closed with no
	// response, so the client sees EOF / connection reset.
	DropResponseRate float64
	// WebhookDropRate: an event is never sent. WebhookDuplicateRate: it is
	// sent twice. WebhookDelayRate: it is held back and sent after the next
	// event (or after WebhookDelay, default 2 s), so events arrive out of
	// order.
	WebhookDropRate, WebhookDuplicateRate, WebhookDelayRate float64
	WebhookDelay                                            time.Duration
	// Unhealthy makes GET /health answer 503 with an UNHEALTHY payload.
	Unhealthy bool
	// PartialOutage makes GET /health answer 200 PARTIAL_OUTAGE with the
	// secondary service notifications down (Unhealthy wins).
	PartialOutage bool
	// ChaosFaults: PostUnauthorized, LateRejectRate (chaosfaults.go).
	ChaosFaults
}

// SetFaults replaces the fault knobs.
func (s *Server) SetFaults(f Faults) {
	s.fmu.Lock()
	s.faults = f
	s.fmu.Unlock()
}

// Faults returns the current fault knobs.
func (s *Server) Faults() Faults {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faults
}

// UpdateFaults applies fn to the knobs atomically.
func (s *Server) UpdateFaults(fn func(*Faults)) {
	s.fmu.Lock()
	fn(&s.faults)
	s.fmu.Unlock()
}

// SetUnhealthy toggles the /health fault.
func (s *Server) SetUnhealthy(v bool) { s.UpdateFaults(func(f *Faults) { f.Unhealthy = v }) }

func (s *Server) rollRequestFaults(applyErrors bool) (time.Duration, int) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	f := &s.faults
	d := f.Latency
	if f.LatencyJitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(f.LatencyJitter)))
	}
	if !applyErrors {
		return d, 0
	}
	if f.ErrorRate > 0 && s.rng.Float64() < f.ErrorRate {
		s.faultCounts.Errors++
		return d, http.StatusServiceUnavailable
	}
	if f.TooManyRequestsRate > 0 && s.rng.Float64() < f.TooManyRequestsRate {
		s.faultCounts.TooManyRequests++
		return d, http.StatusTooManyRequests
	}
	return d, 0
}

// FaultCounts counts the API faults injected so far.
type FaultCounts struct {
	Errors          int64 `json:"errors"`          // 503s
	TooManyRequests int64 `json:"tooManyRequests"` // 429s
	DroppedAnswers  int64 `json:"droppedAnswers"`  // committed, then the answer lost
	ChaosFaultCounts
}

// InjectedFaults returns how many API faults were injected; webhook faults
// are in WebhookStats.
func (s *Server) InjectedFaults() FaultCounts {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faultCounts
}

func (s *Server) rollDropResponse() bool {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	drop := s.faults.DropResponseRate > 0 && s.rng.Float64() < s.faults.DropResponseRate
	drop = s.dropThenLockOut() || drop // chaosfaults.go
	if drop {
		s.faultCounts.DroppedAnswers++
	}
	return drop
}

func (s *Server) rollHook() (drop, dup, delay bool, delayFor time.Duration) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	f := &s.faults
	drop = f.WebhookDropRate > 0 && s.rng.Float64() < f.WebhookDropRate
	dup = f.WebhookDuplicateRate > 0 && s.rng.Float64() < f.WebhookDuplicateRate
	delay = f.WebhookDelayRate > 0 && s.rng.Float64() < f.WebhookDelayRate
	delayFor = f.WebhookDelay
	if delayFor <= 0 {
		delayFor = 2 * time.Second
	}
	return
}

// faultsWire is the JSON of /_sim/faults; durations are Go strings
// ("150ms"). A POST changes only the fields it carries.
type faultsWire struct {
	ErrorRate            *float64 `json:"errorRate,omitempty"`
	TooManyRequestsRate  *float64 `json:"tooManyRequestsRate,omitempty"`
	Latency              *string  `json:"latency,omitempty"`
	LatencyJitter        *string  `json:"latencyJitter,omitempty"`
	DropResponseRate     *float64 `json:"dropResponseRate,omitempty"`
	WebhookDropRate      *float64 `json:"webhookDropRate,omitempty"`
	WebhookDuplicateRate *float64 `json:"webhookDuplicateRate,omitempty"`
	WebhookDelayRate     *float64 `json:"webhookDelayRate,omitempty"`
	WebhookDelay         *string  `json:"webhookDelay,omitempty"`
	Unhealthy            *bool    `json:"unhealthy,omitempty"`
	PartialOutage        *bool    `json:"partialOutage,omitempty"`
	chaosWire
}

func toWire(f Faults) faultsWire {
	d := func(v time.Duration) *string { s := v.String(); return &s }
	return faultsWire{&f.ErrorRate, &f.TooManyRequestsRate, d(f.Latency), d(f.LatencyJitter), &f.DropResponseRate,
		&f.WebhookDropRate, &f.WebhookDuplicateRate, &f.WebhookDelayRate, d(f.WebhookDelay), &f.Unhealthy, &f.PartialOutage, toChaosWire(f.ChaosFaults)}
}

// apply merges w into f.
func (w faultsWire) apply(f *Faults) error {
	rate := func(name string, src *float64, dst *float64) error {
		if src == nil {
			return nil
		}
		if *src < 0 || *src > 1 {
			return fmt.Errorf("%s must be within [0,1]", name)
		}
		*dst = *src
		return nil
	}
	dur := func(name string, src *string, dst *time.Duration) error {
		if src == nil {
			return nil
		}
		v, err := time.ParseDuration(*src)
		if err != nil || v < 0 {
			return fmt.Errorf("%s must be a non-negative duration such as 150ms", name)
		}
		*dst = v
		return nil
	}
	for _, err := range []error{
		rate("errorRate", w.ErrorRate, &f.ErrorRate),
		rate("tooManyRequestsRate", w.TooManyRequestsRate, &f.TooManyRequestsRate),
		dur("latency", w.Latency, &f.Latency),
		dur("latencyJitter", w.LatencyJitter, &f.LatencyJitter),
		rate("dropResponseRate", w.DropResponseRate, &f.DropResponseRate),
		rate("webhookDropRate", w.WebhookDropRate, &f.WebhookDropRate),
		rate("webhookDuplicateRate", w.WebhookDuplicateRate, &f.WebhookDuplicateRate),
		rate("webhookDelayRate", w.WebhookDelayRate, &f.WebhookDelayRate),
		dur("webhookDelay", w.WebhookDelay, &f.WebhookDelay),
	} {
		if err != nil {
			return err
		}
	}
	if w.Unhealthy != nil {
		f.Unhealthy = *w.Unhealthy
	}
	if w.PartialOutage != nil {
		f.PartialOutage = *w.PartialOutage
	}
	return w.chaosWire.apply(&f.ChaosFaults)
}

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var fw faultsWire
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&fw); err != nil {
			s.writeError(w, http.StatusBadRequest, "BAD_REQUEST", "faults body is not valid JSON")
			return
		}
		s.fmu.Lock()
		f := s.faults
		err := fw.apply(&f)
		if err == nil {
			s.faults = f
		}
		s.fmu.Unlock()
		if err != nil {
			s.writeError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
			return
		}
	}
	s.writeJSON(w, http.StatusOK, toWire(s.Faults()))
}
