package rail

import "testing"

func TestHandOffIDRoundTrip(t *testing.T) {
	for _, n := range []Name{SmartFastPay, WEpayout} {
		id := HandOffID(n, "12345")
		got, pid, ok := ParseHandOffID(id)
		if !ok || got != n || pid != "12345" {
			t.Fatalf("%s: %q %q %v", id, got, pid, ok)
		}
	}
	for _, id := range []string{"8707a01d-4c5b-4d31-9a55-000000000001", "wompi:1", "paypal:1", "smartfastpay:", ""} {
		if _, _, ok := ParseHandOffID(id); ok {
			t.Fatalf("%q parsed as a single payout's hand-off id", id)
		}
	}
}
