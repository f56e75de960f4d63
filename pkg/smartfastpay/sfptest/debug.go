package sfptest

import (
	"net/http"
	"time"
)

// debugRoutes mounts the /_sim endpoints. They need no credentials: bind
// the simulator to loopback [ours].
//
//	GET  /_sim/ledger          the ledger by transaction.id, duplicates, paidMoreThanOnce, totals
//	GET  /_sim/faults          the fault knobs
//	POST /_sim/faults          change some knobs: {"errorRate": 0.1, "latency": "150ms", ...}
//	POST /_sim/tick            move the due payouts now
//	POST /_sim/advance?by=1h   move a manual clock, then tick (409 on the real clock)
//	POST /_sim/expire-tokens   expire every token issued so far
//	GET  /_sim/stats           callback, token and fault counters, totals, the clock
func (s *Server) debugRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/ledger", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]any{
			"transactions": s.Ledger(), "duplicates": nonNil(s.Duplicates()),
			"paidMoreThanOnce": nonNil(s.PaidMoreThanOnce()), "totals": s.Totals(),
		})
	})
	mux.HandleFunc("GET /_sim/faults", s.handleFaults)
	mux.HandleFunc("POST /_sim/faults", s.handleFaults)
	mux.HandleFunc("POST /_sim/tick", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]int{"moved": s.Tick()})
	})
	mux.HandleFunc("POST /_sim/advance", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.clock.(*ManualClock); !ok {
			s.writeError(w, http.StatusConflict, "the simulator runs on the real clock")
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d < 0 {
			s.writeError(w, http.StatusBadRequest, "by must be a non-negative duration, e.g. ?by=1h")
			return
		}
		s.writeJSON(w, http.StatusOK, map[string]int{"moved": s.Advance(d)})
	})
	mux.HandleFunc("POST /_sim/expire-tokens", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireTokens()
		s.writeJSON(w, http.StatusOK, map[string]bool{"expired": true})
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]any{"webhooks": s.WebhookStats(), "tokens": s.TokenStats(),
			"totals": s.Totals(), "faults": s.InjectedFaults(), "now": s.clock.Now().UTC().Format(time.RFC3339Nano)})
	})
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
