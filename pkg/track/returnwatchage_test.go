package track

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// createdAtUnreadable rewrites created_at in SmartFastPay's answers to a
// form smartfastpay.Time reads as the zero time (its format is not
// published; Time reads anything it does not know as zero).
type createdAtUnreadable struct{ next http.RoundTripper }

var createdAtRe = regexp.MustCompile(`"created_at":"[^"]*"`)

func (c createdAtUnreadable) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, smartfastpay.PathPayout+"/") {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	b = createdAtRe.ReplaceAll(b, []byte(`"created_at":"13/06/2024 10:00:00"`))
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// A SmartFastPay payout without hand-off (a partial Redis loss) is paid:
// its success callback emits APPROVED and enrolls it for the return watch
// (mayReverse). SmartFastPay answers a created_at the client cannot read
// (the zero time): pollSingle takes the payout's age as now minus year 1,
// beyond any ReturnWatch, and its first poll ends the watch. The refund
// that follows, whose callbacks are lost, is never emitted. (The rebuild,
// rebuildTakesSingle, takes such a payout for the watch.)
func TestSmartFastPayReturnWatchWithUnreadableCreatedAt(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	s := newSingles(t)
	s.sfpc = s.sfp.Client(func(c *smartfastpay.Config) {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: createdAtUnreadable{http.DefaultTransport}}
	})
	e, srv := f.singleEngine(s, nil)
	ctx := context.Background()
	r := f.sfpPayout(srv.URL, "98") // stays onhold until SetStatus
	f.approvedWithoutHandOff(s, r)
	// The first poll, an hour later: still paid.
	f.clock.Advance(time.Hour)
	if _, err := e.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := f.sub.Scheduled(ctx); err != nil || n != 1 {
		t.Fatalf("scheduled after the first poll: %d %v: the return watch (ReturnWatch 24h) ended after an hour", n, err)
	}
	// Refunded; every callback of it is lost: only a poll can see it.
	f.refundedUnwatched(s, e, r.ID, time.Hour)
}
