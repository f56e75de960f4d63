package dispatch

import (
	"context"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// A batch record keeps the rail of its first claim, and OpenBatches reports
// it (payoutsctl stuck names each open batch's rail by it).
func TestOpenBatchesNameTheirRail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	e := f.engine(nil)
	ctx := context.Background()
	for _, c := range []struct {
		batch string
		n     rail.Name
	}{{"b-sfp", rail.SmartFastPay}, {"b-wep", rail.WEpayout}, {"b-wompi", rail.Wompi}} {
		if cl, err := e.st.claim(ctx, "w", "e0", c.batch, c.n); err != nil || cl.code != "fresh" {
			t.Fatalf("claim %s: %+v %v", c.batch, cl, err)
		}
	}
	// A later claim resumes the record; the rail it was first claimed
	// for stays.
	if err := e.st.releaseLease(ctx, "w", "b-sfp"); err != nil {
		t.Fatal(err)
	}
	if cl, err := e.st.claim(ctx, "w2", "e0", "b-sfp", rail.Wompi); err != nil || cl.code != "resume" {
		t.Fatalf("second claim: %+v %v", cl, err)
	}
	got := map[string]string{}
	if err := OpenBatches(ctx, e.st.rdb, e.st.prefix, func(r BatchRecord) error {
		got[r.BatchID] = r.Rail
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"b-sfp": "smartfastpay", "b-wep": "wepayout", "b-wompi": "wompi"}
	for b, n := range want {
		if got[b] != n {
			t.Fatalf("open batches %v, want %v", got, want)
		}
	}
}
