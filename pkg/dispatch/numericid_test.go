package dispatch

import (
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// numericOurIDs rewrites SmartFastPay's lookup answers to name an all-digit
// transaction_id of ours as a JSON number, as a provider that keeps it as
// a number writes it: its leading zeros gone ("000777" -> 777).
type numericOurIDs struct {
	rewritten atomic.Int32 // lookup answers rewritten
}

var quotedDigits = regexp.MustCompile(`"transaction_id":"0+([1-9][0-9]*)"`)

func (n *numericOurIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || req.URL.Query().Get("transaction_id") == "" {
		return resp, err
	}
	return rewriteAnswer(resp, func(body []byte) ([]byte, error) {
		out := quotedDigits.ReplaceAll(body, []byte(`"transaction_id":$1`))
		if string(out) != string(body) {
			n.rewritten.Add(1)
		}
		return out, nil
	})
}

// Two faults: a SmartFastPay create is applied and its answer lost; the
// lookup that follows (after the grace) lists the payout with our
// all-digit id as a number, its leading zeros gone. "777" is not "000777",
// nor that id in another case or with spaces, and was taken for another
// request's payout: the payee was proven absent and paid again. A listed
// id that is ours read as a number proves nothing: the payee waits.
func TestNumericFormOfOurIDIsNotProvenAbsent(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[0](t)
	if r.name != rail.SmartFastPay {
		t.Fatalf("rail %s, want SmartFastPay", r.name)
	}
	tr := &numericOurIDs{}
	r = r.through(t, tr)
	f := newFixture(t, fixtureOpt{})
	b := singleBatch(r, "numeric", 1)
	rid := "000777"
	b.Transactions[0].RequestID = rid
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1 })
	r.sim.DropNextCreateResponse()
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "a second POST or three lookups answered with the numeric id", func() bool {
		return r.sim.Accepted(rid) > 1 || tr.rewritten.Load() >= 3
	})
	_ = stop()
	if n := r.sim.Accepted(rid); n != 1 {
		t.Fatalf("%s paid %d times, want 1 (lookups answered with the numeric id: %d)", rid, n, tr.rewritten.Load())
	}
}
