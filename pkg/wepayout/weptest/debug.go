package weptest

import (
	"net/http"
	"time"
)

// debugRoutes mounts the /_sim endpoints. They need no credentials: bind
// the simulator to loopback [ours].
func (s *Server) debugRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/ledger", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"invoices": s.Ledger(), "duplicates": s.Duplicates(), "paidMoreThanOnce": s.PaidMoreThanOnce(),
			"totals": s.Totals(),
		})
	})
	mux.HandleFunc("GET /_sim/faults", s.handleFaults)
	mux.HandleFunc("POST /_sim/faults", s.handleFaults)
	mux.HandleFunc("POST /_sim/tick", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"steps": s.Tick()})
	})
	mux.HandleFunc("POST /_sim/advance", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.clock.(*ManualClock); !ok {
			writeMessage(w, http.StatusConflict, "the simulator runs on the real clock")
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d < 0 {
			writeMessage(w, http.StatusBadRequest, "by must be a non-negative duration, e.g. ?by=1h")
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"steps": s.Advance(d)})
	})
	mux.HandleFunc("POST /_sim/status", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := s.SetStatus(q.Get("invoice"), q.Get("status")); err != nil {
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"invoice": q.Get("invoice"), "status": q.Get("status")})
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"webhooks": s.WebhookStats(), "totals": s.Totals(),
			"faults": s.InjectedFaults(), "balanceInCents": s.BalanceInCents(),
			"now": s.clock.Now().UTC().Format(time.RFC3339Nano)})
	})
}
