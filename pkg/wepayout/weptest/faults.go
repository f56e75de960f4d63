package weptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Faults are the fault-injection knobs. Every roll uses one math/rand/v2
// generator seeded by Config.Seed, so the same seed and the same sequence
// of calls inject the same faults. Change them at run time with SetFaults
// or POST /_sim/faults.
type Faults struct {
	// ErrorRate is the probability that an API call is answered 503 before
	// anything happens.
	ErrorRate float64
	// TooManyRequestsRate is the probability of a 429, before anything
	// happens [ours: WEpayout publishes no rate limit].
	TooManyRequestsRate float64
	// Latency delays every API call, plus a uniform jitter in
	// [0, LatencyJitter). A client that gives up earlier sees a timeout,
	// and a create it gave up on may still be applied: the simulator
	// applies it after the delay unless the client has gone.
	Latency, LatencyJitter time.Duration
	// DropResponseRate is the probability that a create COMMITS the
	// payment and then loses the answer: the connection closes with no
	// response (http.ErrAbortHandler).
	DropResponseRate float64
	// WebhookDropRate: an event is never sent. WebhookDuplicateRate: it is
	// sent twice. WebhookDelayRate: it is held back and sent after the
	// next event (or after WebhookDelay, default 2 s): out of order.
	WebhookDropRate, WebhookDuplicateRate, WebhookDelayRate float64
	WebhookDelay                                            time.Duration
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

// FailNext makes the next API call answer status before doing anything
// (credentials included). Calls queue: two FailNext fail two calls.
func (s *Server) FailNext(status int) {
	s.fmu.Lock()
	s.failNext = append(s.failNext, status)
	s.fmu.Unlock()
}

// DropNextCreateResponse makes the next create commit the payment, then
// lose its answer.
func (s *Server) DropNextCreateResponse() {
	s.fmu.Lock()
	s.dropNext++
	s.fmu.Unlock()
}

// FaultCounts counts the API faults injected so far.
type FaultCounts struct {
	Errors          int64 `json:"errors"`          // 503s (and FailNext 5xx)
	TooManyRequests int64 `json:"tooManyRequests"` // 429s
	DroppedAnswers  int64 `json:"droppedAnswers"`  // committed, then the answer lost
	Injected        int64 `json:"injected"`        // FailNext answers
}

// InjectedFaults returns how many API faults were injected; webhook faults
// are in WebhookStats.
func (s *Server) InjectedFaults() FaultCounts {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faultCounts
}

// rollRequestFaults returns the latency to add and the status to answer
// instead (0: none).
func (s *Server) rollRequestFaults() (time.Duration, int) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if len(s.failNext) > 0 {
		st := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.faultCounts.Injected++
		return 0, st
	}
	f := &s.faults
	d := f.Latency
	if f.LatencyJitter > 0 {
		d += time.Duration(s.rng.Int64N(int64(f.LatencyJitter)))
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

func (s *Server) rollDropResponse() bool {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	drop := s.dropNext > 0
	if drop {
		s.dropNext--
	} else {
		drop = s.faults.DropResponseRate > 0 && s.rng.Float64() < s.faults.DropResponseRate
	}
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
}

func toWire(f Faults) faultsWire {
	d := func(v time.Duration) *string { s := v.String(); return &s }
	return faultsWire{&f.ErrorRate, &f.TooManyRequestsRate, d(f.Latency), d(f.LatencyJitter), &f.DropResponseRate,
		&f.WebhookDropRate, &f.WebhookDuplicateRate, &f.WebhookDelayRate, d(f.WebhookDelay)}
}

// apply merges w into f.
func (w faultsWire) apply(f *Faults) error {
	rate := func(name string, src *float64, dst *float64) error {
		if src == nil {
			return nil
		}
		if !(*src >= 0 && *src <= 1) {
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
	return nil
}

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var fw faultsWire
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&fw); err != nil {
			writeMessage(w, http.StatusBadRequest, "faults body is not valid JSON")
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
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, toWire(s.Faults()))
}
