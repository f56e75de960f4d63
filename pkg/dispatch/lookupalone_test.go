package dispatch

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// uncomparableFor adds to the first page of every SmartFastPay listing
// filtered by a transaction_id list that holds id a payout without a
// transaction_id: an item no lookup of those ids can compare.
type uncomparableFor struct {
	base   http.RoundTripper
	id     string
	groups *atomic.Int32 // listings asked for more than one id
}

func (u uncomparableFor) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.base.RoundTrip(req)
	q := req.URL.Query()
	if req.URL.Path == smartfastpay.PathPayouts && strings.Contains(q.Get("transaction_id"), ",") {
		u.groups.Add(1)
	}
	if err != nil || req.Method != http.MethodGet || req.URL.Path != smartfastpay.PathPayouts ||
		!strings.Contains(","+q.Get("transaction_id")+",", ","+u.id+",") || (q.Get("page") != "" && q.Get("page") != "1") {
		return resp, err
	}
	return rewriteAnswer(resp, func(body []byte) ([]byte, error) {
		item := map[string]any{"id": "9999999", "transaction_id": "", "amount": "1.00", "status": "paid"}
		var env map[string]any
		var list []any
		if json.Unmarshal(body, &env) == nil {
			data, _ := env["data"].([]any)
			env["data"] = append(data, item)
			body, _ = json.Marshal(env)
		} else if json.Unmarshal(body, &list) == nil {
			body, _ = json.Marshal(append(list, item))
		}
		return body, nil
	})
}

// SmartFastPay's group lookup meets a listed payout it cannot compare (no
// transaction_id) for one payee of a batch whose payees are all looked up.
// Only that payee waits (DEFERRED RAIL_UNAVAILABLE, its own lookups
// failing the same way); the others are looked up alone and paid at once,
// instead of the whole group waiting out the rail's patience.
func TestUncomparableGroupLookupHoldsOnlyItsPayee(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{partitions: 1})
	r := singleRails(t)[0](t)
	b := singleBatch(r, "alone", 3)
	held := b.Transactions[1].RequestID
	var groups atomic.Int32
	e := r.through(t, uncomparableFor{base: http.DefaultTransport, id: held, groups: &groups}).engine(f, func(c *Config) {
		c.LookupEveryPayee, c.RailPatience = true, time.Second
	})
	bb := b
	if err := e.process(context.Background(), &bb, nil, testLogger()); err != nil {
		t.Fatal(err)
	}
	for _, tx := range b.Transactions {
		want := 1
		if tx.RequestID == held {
			want = 0
		}
		if n := r.sim.Accepted(tx.RequestID); n != want {
			t.Errorf("%s paid %d times, want %d", tx.RequestID, n, want)
		}
	}
	if n := groups.Load(); n != 1 {
		t.Errorf("the group lookup was made %d times, want once (its listing cannot become comparable by asking again)", n)
	}
	def := byStatus(f.statuses())[held][payout.StatusDeferred]
	if len(def) != 1 || def[0].ReasonCode == nil || *def[0].ReasonCode != string(rail.ReasonRailUnavailable) {
		t.Fatalf("%s: DEFERRED %+v, want one RAIL_UNAVAILABLE", held, def)
	}
}
