package wompi_test

import (
	"encoding/json"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The checksum concatenates the signed values with no separator, and the
// property list is the body's own (unsigned). A genuine payout.updated
// signed over [payout.id, payout.status, payout.amountInCents] can be
// re-cut: an extra signed property next to the status takes part of it
// ("AFE_" + "REJECTED", "PENDING" + "_APPROVAL"), the concatenation and so
// the checksum stay the same, and the event now says another status.
func TestSignedStatusCannotBeRecutByAnExtraProperty(t *testing.T) {
	const secret = "prod_events_7b193c8afd7b47949f90d443cb1e1742"
	const ts = int64(1747673128600)
	cases := []struct {
		genuine, forged string
		props           []string
		extra           map[string]any
	}{
		{"AFE_REJECTED", "REJECTED", []string{"payout.id", "payout.x", "payout.status", "payout.amountInCents"}, map[string]any{"x": "AFE_"}},
		{"PENDING_APPROVAL", "PENDING", []string{"payout.id", "payout.status", "payout.x", "payout.amountInCents"}, map[string]any{"x": "_APPROVAL"}},
	}
	for _, c := range cases {
		t.Run(c.forged, func(t *testing.T) {
			id := "04a6e53d-a244-4140-ab9e-48fa541f9fe5"
			gdata, _ := json.Marshal(map[string]any{"payout": map[string]any{"id": id, "status": c.genuine, "amountInCents": 7500000}})
			sum, err := wompi.EventChecksum(gdata, []string{"payout.id", "payout.status", "payout.amountInCents"}, ts, secret)
			if err != nil {
				t.Fatal(err)
			}
			p := map[string]any{"id": id, "status": c.forged, "amountInCents": 7500000}
			for k, v := range c.extra {
				p[k] = v
			}
			body, _ := json.Marshal(map[string]any{"event": wompi.EventPayoutUpdated, "data": map[string]any{"payout": p},
				"signature": map[string]any{"properties": c.props, "checksum": sum}, "timestamp": ts})
			ev, err := wompi.ParseEvent(body, sum, secret)
			if err == nil {
				t.Fatalf("a genuine %s re-cut into %s accepted: status %q", c.genuine, c.forged, ev.Payout.Status)
			}
		})
	}
}
