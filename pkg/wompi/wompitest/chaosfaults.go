package wompitest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// ChaosFaults are the fault knobs behind the double-payment sequences of
// the dispatcher's money-safety rules [ours]. They are part of Faults (set
// them with SetFaults or POST /_sim/faults, JSON names postUnauthorized and
// lateRejectRate) and are counted in FaultCounts.
type ChaosFaults struct {
	// PostUnauthorized answers every POST /payouts and /payouts/file 401
	// UNAUTHORIZED before anything happens, as a rotated or revoked API key
	// would; reads still work. Left on longer than Config.IdempotencyTTL,
	// it outlives the key of any batch whose answer was lost just before.
	PostUnauthorized bool
	// PostUnauthorizedAfterDrop arms the outage: the next POST that
	// commits a payout loses its answer (as with DropResponseRate) and
	// switches PostUnauthorized on, so that batch's retries, with its key
	// live, meet the outage for sure. It is cleared when it fires.
	PostUnauthorizedAfterDrop bool
	// LateRejectRate is the probability that a POST reusing a live
	// idempotency key (which would be answered 409 EXC_022) is answered 400
	// VALIDATION_ERROR instead: a validation that changed between attempts
	// (a dispersion date gone stale at midnight, an account no longer
	// ACTIVE) after an answer was lost. The batch exists all the same.
	LateRejectRate float64
}

// ChaosFaultCounts counts the ChaosFaults injected, and the idempotency-key
// reuses they are meant to provoke.
type ChaosFaultCounts struct {
	// UnauthorizedPosts counts the POSTs PostUnauthorized refused.
	UnauthorizedPosts int64 `json:"unauthorizedPosts"`
	// UnauthorizedLiveKeys counts the distinct idempotency keys that were
	// live (a payout committed under them) when PostUnauthorized refused a
	// POST carrying them: batches whose answer was lost and whose retries
	// met the outage.
	UnauthorizedLiveKeys int64 `json:"unauthorizedLiveKeys"`
	// LateRejects counts the 400s LateRejectRate answered instead of a 409.
	LateRejects int64 `json:"lateRejects"`
	// ExpiredKeyReuses counts the payouts created under an idempotency key
	// that had already created one, which had expired (IdempotencyTTL): a
	// batch paid twice because its client outlived its key. Not a fault: a
	// symptom, counted whatever the knobs.
	ExpiredKeyReuses int64 `json:"expiredKeyReuses"`
}

// chaosWire is the JSON of ChaosFaults inside /_sim/faults.
type chaosWire struct {
	PostUnauthorized          *bool    `json:"postUnauthorized,omitempty"`
	PostUnauthorizedAfterDrop *bool    `json:"postUnauthorizedAfterDrop,omitempty"`
	LateRejectRate            *float64 `json:"lateRejectRate,omitempty"`
}

func toChaosWire(f ChaosFaults) chaosWire {
	return chaosWire{&f.PostUnauthorized, &f.PostUnauthorizedAfterDrop, &f.LateRejectRate}
}

func (w chaosWire) apply(f *ChaosFaults) error {
	if w.LateRejectRate != nil {
		if *w.LateRejectRate < 0 || *w.LateRejectRate > 1 {
			return fmt.Errorf("lateRejectRate must be within [0,1]")
		}
		f.LateRejectRate = *w.LateRejectRate
	}
	if w.PostUnauthorized != nil {
		f.PostUnauthorized = *w.PostUnauthorized
	}
	if w.PostUnauthorizedAfterDrop != nil {
		f.PostUnauthorizedAfterDrop = *w.PostUnauthorizedAfterDrop
	}
	return nil
}

// keyCommitted records that key created a payout (caller holds s.mu) and
// counts a key that had created one before: Tick forgets expired keys, so
// this remembers every key for the life of the simulator.
func (s *Server) keyCommitted(key string) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.chaosKeys == nil {
		s.chaosKeys = map[string]bool{}
	}
	if s.chaosKeys["c/"+key] {
		s.faultCounts.ExpiredKeyReuses++
	}
	s.chaosKeys["c/"+key] = true
}

// dropThenLockOut fires PostUnauthorizedAfterDrop (caller holds s.fmu):
// it reports whether this committed POST must lose its answer.
func (s *Server) dropThenLockOut() bool {
	if !s.faults.PostUnauthorizedAfterDrop {
		return false
	}
	s.faults.PostUnauthorizedAfterDrop = false
	s.faults.PostUnauthorized = true
	s.log.Info("wompisim: fault: API key outage starts after this lost answer")
	return true
}

// refusePostUnauthorized answers 401 when PostUnauthorized is on, and
// reports whether it did. key is the POST's idempotency key ("" if none).
func (s *Server) refusePostUnauthorized(w http.ResponseWriter, key string) bool {
	s.fmu.Lock()
	on := s.faults.PostUnauthorized
	s.fmu.Unlock()
	if !on {
		return false
	}
	live := false
	if key != "" {
		now := s.clock.Now()
		s.mu.Lock()
		at, ok := s.idem[key]
		live = ok && now.Sub(at) < s.cfg.IdempotencyTTL
		s.mu.Unlock()
	}
	s.fmu.Lock()
	s.faultCounts.UnauthorizedPosts++
	if live {
		if s.chaosKeys == nil {
			s.chaosKeys = map[string]bool{}
		}
		if !s.chaosKeys["u/"+key] {
			s.chaosKeys["u/"+key] = true
			s.faultCounts.UnauthorizedLiveKeys++
		}
	}
	s.fmu.Unlock()
	s.log.Info("wompisim: fault: POST refused 401 (API key outage)", "liveKey", live)
	s.writeError(w, http.StatusUnauthorized, wompi.CodeUnauthorized, "missing or invalid x-api-key / user-principal-id")
	return true
}

// keyReuse decides the answer to a POST whose idempotency key was used
// before, age ago (caller holds s.mu): nil when the key has expired (the
// POST goes on), else the 409 EXC_022, or with LateRejectRate a 400
// VALIDATION_ERROR.
func (s *Server) keyReuse(age time.Duration) *apiError {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if age >= s.cfg.IdempotencyTTL {
		return nil
	}
	if r := s.faults.LateRejectRate; r > 0 && s.rng.Float64() < r {
		s.faultCounts.LateRejects++
		return &apiError{http.StatusBadRequest, wompi.CodeValidation, "dispersionDatetime must be at least the next day (America/Bogota)"}
	}
	return &apiError{http.StatusConflict, wompi.CodeIdempotencyReused, "idempotency-key was already used"}
}
