package wompitest_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// TestPublishedOnlyDropsOurExtras: with PublishedOnly every [ours] field
// is gone and ?date= is ignored; without it they are there.
func TestPublishedOnlyDropsOurExtras(t *testing.T) {
	for _, pub := range []bool{false, true} {
		s, c, _ := start(t, wompitest.Config{PublishedOnly: pub})
		ctx := context.Background()
		req := batchr("pub-1", wompitest.AccountMain, txr("pub-1-a", "1234567890", 1000))
		req.DispersionDatetime = t0.Add(24 * time.Hour)
		req.Recurring = &wompi.Recurring{Interval: wompi.IntervalMonth, Months: 3}
		res, err := c.CreatePayout(ctx, "pub-1", req)
		if err != nil {
			t.Fatal(err)
		}
		tomorrow := t0.Add(24 * time.Hour).In(wompi.Bogota).Format(time.DateOnly)
		_, lim := raw(t, s, "GET", "/v1/limits?date="+tomorrow, nil, nil)
		_, p := raw(t, s, "GET", "/v1/payouts/"+res.PayoutID, nil, nil)
		_, txs := raw(t, s, "GET", "/v1/payouts/"+res.PayoutID+"/transactions", nil, nil)
		tx := txs["data"].(map[string]any)["records"].([]any)[0].(map[string]any)
		payout := p["data"].(map[string]any)
		if pub {
			if got := keys(lim); got != "limits,numberOfTransactionsConsumed" {
				t.Fatalf("published /limits keys = %s", got)
			}
			// date ignored: today's figures (nothing spent today).
			if l := lim["limits"].(map[string]any); l["dailyConsumed"].(float64) != 0 {
				t.Fatalf("published /limits answered for ?date=: %v", l)
			}
			if _, ok := payout["accountId"]; ok {
				t.Fatal("published batch carries accountId")
			}
			if _, ok := payout["recurring"]; ok {
				t.Fatal("published batch carries recurring")
			}
			if _, ok := tx["payoutId"]; ok {
				t.Fatal("published transaction carries payoutId")
			}
			continue
		}
		if got := keys(lim); got != "accounts,date,limits,numberOfBatchesConsumed,numberOfTransactionsConsumed" {
			t.Fatalf("/limits keys = %s", got)
		}
		if l := lim["limits"].(map[string]any); l["dailyConsumed"].(float64) != 1000 {
			t.Fatalf("/limits?date= for tomorrow: %v", l)
		}
		if payout["accountId"] != wompitest.AccountMain || payout["recurring"] == nil || tx["payoutId"] != res.PayoutID {
			t.Fatalf("extras missing: payout %v tx %v", payout, tx)
		}
	}
}
