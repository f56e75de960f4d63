package wompitest

import (
	"encoding/json"
	"net/http"
	"time"
)

// debugRoutes mounts the /_sim endpoints. They need no credentials: bind
// the simulator to loopback [ours].
func (s *Server) debugRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/ledger", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]any{
			"transactions": s.Ledger(), "batches": s.BatchLedger(), "duplicates": nonNil(s.Duplicates()),
			"paidMoreThanOnce": nonNil(s.PaidMoreThanOnce()), "duplicateBatches": nonNil(s.DuplicateBatches()),
			"totals": s.Totals(),
		})
	})
	mux.HandleFunc("GET /_sim/ledger/amounts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = s.WriteLedgerAmounts(w)
	})
	mux.HandleFunc("GET /_sim/faults", s.handleFaults)
	mux.HandleFunc("POST /_sim/faults", s.handleFaults)
	mux.HandleFunc("POST /_sim/tick", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]int{"settled": s.Tick()})
	})
	mux.HandleFunc("POST /_sim/advance", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.clock.(*ManualClock); !ok {
			s.writeError(w, http.StatusConflict, "REAL_CLOCK", "the simulator runs on the real clock")
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d < 0 {
			s.writeError(w, http.StatusBadRequest, "BAD_REQUEST", "by must be a non-negative duration, e.g. ?by=1h")
			return
		}
		s.writeJSON(w, http.StatusOK, map[string]int{"settled": s.Advance(d)})
	})
	mux.HandleFunc("GET /_sim/webhook", func(w http.ResponseWriter, r *http.Request) {
		s.hooks.mu.Lock()
		u := s.hooks.url
		s.hooks.mu.Unlock()
		s.writeJSON(w, http.StatusOK, map[string]string{"url": u})
	})
	mux.HandleFunc("POST /_sim/webhook", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			URL string `json:"url"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&body); err != nil {
			s.writeError(w, http.StatusBadRequest, "BAD_REQUEST", `body must be {"url": "..."}`)
			return
		}
		s.SetWebhookURL(body.URL)
		s.writeJSON(w, http.StatusOK, map[string]string{"url": body.URL})
	})
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]any{"webhooks": s.WebhookStats(), "totals": s.Totals(), "faults": s.InjectedFaults(),
			"pending": s.Pending(), "now": s.clock.Now().UTC().Format(time.RFC3339Nano)})
	})
	mux.HandleFunc("GET /_sim/reports/{file}", s.handleReportCSV)
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
