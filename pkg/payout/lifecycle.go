package payout

import (
	"fmt"
	"strings"
)

// CheckLifecycles checks the contract of the status topic on events in
// topic order (one partition per requestId keeps each request's order):
// after dedupe by eventId, the statuses of each requestId follow one
// forward-only path (CanTransition; a DEFERRED may repeat, one per
// deferral) and include at most one final status; an eventId never
// stands for two events (another requestId or status). It returns every
// violation found, one line each, or nil.
func CheckLifecycles(evs []StatusChange) error {
	seen := make(map[string]*StatusChange, len(evs))
	last := map[string]Status{}
	var problems []string
	for i := range evs {
		ev := &evs[i]
		if first := seen[ev.EventID]; first != nil {
			// A consumer drops it as a redelivery of the first: a different
			// event under a used eventId never reaches it.
			if first.RequestID != ev.RequestID || first.Status != ev.Status {
				problems = append(problems, fmt.Sprintf("request %s: %s from %s reuses the eventId %s of request %s's %s: consumers drop it",
					ev.RequestID, ev.Status, ev.Source, ev.EventID, first.RequestID, first.Status))
			}
			continue
		}
		seen[ev.EventID] = ev
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
