package payout

import (
	"fmt"
	"strings"
)

// CheckLifecycles checks the contract of the status topic on events in
// topic order (one partition per requestId keeps each request's order):
// after dedupe by eventId, the statuses of each requestId follow one
// forward-only path (CanTransition; a DEFERRED may repeat, one per
// deferral) and include at most one final status. It returns every
// violation found, one line each, or nil.
func CheckLifecycles(evs []StatusChange) error {
	seen := make(map[string]bool, len(evs))
	last := map[string]Status{}
	var problems []string
	for i := range evs {
		ev := &evs[i]
		if seen[ev.EventID] {
			continue
		}
		seen[ev.EventID] = true
		from := last[ev.RequestID]
		if !CanTransition(from, ev.Status) && (from != StatusDeferred || ev.Status != StatusDeferred) {
			reason := ""
			if ev.ReasonCode != nil {
				reason = " (" + *ev.ReasonCode + ")"
			}
			problems = append(problems, fmt.Sprintf("request %s: %s then %s%s from %s", ev.RequestID, from, ev.Status, reason, ev.Source))
			if from.Final() {
				continue // keep the first final status as the request's
			}
		}
		last[ev.RequestID] = ev.Status
	}
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
	}
	return fmt.Errorf("status topic breaks one lifecycle per requestId:\n  %s", strings.Join(problems, "\n  "))
}
