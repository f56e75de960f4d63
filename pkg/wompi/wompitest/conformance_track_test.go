package wompitest_test

import (
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/rail/railtest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Wompi behind the tracker's part of the seam (rail.BatchTracking).
func TestBatchTrackingConformance(t *testing.T) {
	h := railtest.TrackingHarness{
		BatchHarness: batchHarness(),
		Refusals: map[string]rail.WebhookRefusal{
			"status changed under the genuine checksum":       rail.RefusedChecksum,
			"unsigned: no checksum in header or body":         rail.RefusedChecksum,
			"signed event with an unsigned case-variant key":  rail.RefusedAmbiguous,
			"signed event with a repeated key":                rail.RefusedAmbiguous,
			"signed event with an unsigned extra entity":      rail.RefusedUnsigned,
			"item event relabelled as a batch event":          rail.RefusedUnsigned,
			"batch event relabelled as an item event":         rail.RefusedUnsigned,
			"signed with the secret, but not over the status": rail.RefusedUnsigned,
			"no signature block":                              rail.RefusedMalformed,
			"more signed properties than the bound":           rail.RefusedTooLarge,
		},
		MoreForgeries: []railtest.Forgery{
			{Name: "no signature block", Event: "batch", Is: wompi.ErrMalformedEvent,
				Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
					return editEvent(t, w, func(ev map[string]any) { delete(ev, "signature") })
				}},
			{Name: "more signed properties than the bound", Event: "item", Is: wompi.ErrSignatureTooLarge,
				Forge: func(t *testing.T, w railtest.Webhook) railtest.Webhook {
					return editEvent(t, w, func(ev map[string]any) {
						props := make([]any, wompi.MaxSignedProperties+1)
						for i := range props {
							props[i] = "transaction.id"
						}
						ev["signature"].(map[string]any)["properties"] = props
					})
				}},
		},
	}
	h.RefusedFilter.New = func(t *testing.T) (rail.BatchPayouts, railtest.BatchSim) {
		return newConformance(t, wompitest.Config{StrictStatusFilter: true})
	}
	h.RefusedFilter.Status = payout.BatchAFEOnHold
	railtest.RunBatchTracking(t, h)
}
