package weptest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// clientBody is a create body as the WEpayout client writes it.
func clientBody(t testing.TB) []byte {
	n := json.Number("1001")
	b, err := json.Marshal(wepayout.CreatePaymentRequest{PaymentMethod: "PIX", Currency: "BRL", Country: "BR", Amount: 5034,
		Invoice: "req-1", Beneficiary: wepayout.Beneficiary{Name: "Maria Souza", Document: wepayout.Document{Type: "CPF", Number: "52998224725"}},
		PIX: &wepayout.PIX{Key: "maria.souza00@example.com"}, MerchantID: &n, Description: "test payout",
		NotificationURL: "https://example.com/webhooks/wepayout"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCreateBodyMatchesEncodingJSON: whenever the hand-written reader
// accepts a create's body, json.Unmarshal reads the same createBody from
// it without an error.
func FuzzCreateBodyMatchesEncodingJSON(f *testing.F) {
	f.Add(clientBody(f))
	for _, s := range []string{
		`{"payment_method":"PIX","amount":"50.34","beneficiary":{"name":"A","document":{"type":"CPF","number":"1","x":1}},"pix":{"pix_key":"k"},"purpose":"p","other":[1,{"a":null}]}`,
		`{"amount":50.34,"merchant_id":"7"}`,
		`{"invoice":"a","Invoice":"b"}`,
		`{"invoice":"a","invoice":"b"}`,
		`{"invoice":null}`,
		`{"invoice":"a\nb"}`,
		`{"beneficiary":null}`,
		`{"beneficiary":{"NAME":"x"}}`,
		`{"beneficiary":{"document":{"Number":"x"}}}`,
		`{"pix":{"PIX_KEY":"x","pix_key":"y"}}`,
		`{"amount":{"a":1}}`,
		`{"amount":01}`,
		`{"paymenſ_method":"x"}`,
		`{"invoice":"a"} {}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := readCreateBody(raw)
		if !ok {
			return
		}
		var want createBody
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("ours accepted %q; encoding/json: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("from %q\n ours %s\n json %s", raw, gj, wj)
		}
	})
}

// TestCreateBodyFastPath: the body the client writes takes the
// hand-written path (else the load run measures encoding/json again).
func TestCreateBodyFastPath(t *testing.T) {
	b, ok := readCreateBody(clientBody(t))
	if !ok || b.Invoice != "req-1" || string(b.Amount) != "50.34" || b.PIX == nil || b.PIX.Key != "maria.souza00@example.com" ||
		b.Beneficiary == nil || b.Beneficiary.Document == nil || b.Beneficiary.Document.Number != "52998224725" || string(b.MerchantID) != "1001" {
		t.Fatalf("read %+v, %v", b, ok)
	}
}

// BenchmarkCreateBody compares the hand-written reader with encoding/json
// on the client's body.
func BenchmarkCreateBody(b *testing.B) {
	raw := clientBody(b)
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := readCreateBody(raw); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cb createBody
			if err := json.Unmarshal(raw, &cb); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCreateViewBytes: the hand-written create answer is byte-identical to
// the map encoding/json wrote before, invoices that need escaping included.
func TestCreateViewBytes(t *testing.T) {
	s := &Server{}
	at := time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)
	for _, p := range []payment{
		{id: 1, invoice: "req-1", cents: 5034, status: wepayout.StatusCreated, createdAt: at},
		{id: 987654321, invoice: `a<b>&"c"\é` + "\x01\xff\u2028", cents: 0, status: 99, createdAt: at.Add(time.Hour)},
		{id: 7, invoice: "", cents: 9_999_999_999, status: wepayout.StatusPaid},
	} {
		want, err := json.Marshal(s.createView(&p))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.appendCreateView(nil, &p); string(got) != string(want) {
			t.Errorf("\n ours %s\n json %s", got, want)
		}
	}
}

// TestEmptyPageBytes: the hand-written empty page is byte-identical to the
// page map encoding/json wrote before, on any page of any length, with
// links that need escaping.
func TestEmptyPageBytes(t *testing.T) {
	link := func(last int) func(int) any {
		return func(n int) any {
			if n < 1 || n > last {
				return nil
			}
			return fmt.Sprintf("http://127.0.0.1:1/v2/payout/payments?external_id=a%%3Cb&page=%d&per_page=100", n)
		}
	}
	for _, c := range []struct{ page, per, last, total int }{{1, 100, 1, 0}, {2, 100, 1, 0}, {3, 20, 1, 0}, {5, 10, 4, 31}} {
		want, err := json.Marshal(pageView([]map[string]any{}, c.page, c.per, c.last, c.total, link(c.last)))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEmptyPage(nil, c.page, c.per, c.last, c.total, link(c.last)); string(got) != string(want) {
			t.Errorf("%+v:\n ours %s\n json %s", c, got, want)
		}
	}
}

// oldPageLink is the listing's link as it was built for every link: the
// request's query parsed, its page set, encoded again.
func oldPageLink(u *url.URL, last, n int) any {
	if n < 1 || n > last {
		return nil
	}
	v := *u
	q := v.Query()
	q.Set("page", strconv.Itoa(n))
	v.RawQuery = q.Encode()
	return v.String()
}

// TestPageLinksMatchValuesEncode holds pageLinks, which parses and encodes
// the query once, to building each link with url.Values: keys before and
// after "page" in sort order, keys that contain "page", repeated keys,
// escapes, an empty query, a trailing "?", pages outside 1..last.
func TestPageLinksMatchValuesEncode(t *testing.T) {
	for _, raw := range pageLinkSeeds {
		checkPageLinks(t, raw)
	}
}

var pageLinkSeeds = []string{
	"/v2/payout/payments?external_id=req-1",
	"/v2/payout/payments?external_id=req-1&page=3&per_page=100",
	"/v2/payout/payments?apage=%00&page=2&zpage=x&page=9",
	"/v2/payout/payments?pag=1&pagf=2&page&pagea=3&Page=4",
	"/v2/payout/payments?",
	"/v2/payout/payments",
	"/v2/payout/pay%20ments?a=%E2%80%A8&b=%3C%3E%26&c=+&c=%2B&d=",
	"/v2/payout/payments?x=1;y=2&z=%zz",
	"/v2/payout/payments?external_id=r-1#frag%20ment",
	"/v2/payout/payments#only-a-fragment",
}

func checkPageLinks(t *testing.T, raw string) {
	t.Helper()
	// A server's request URL (ParseRequestURI: no fragment), and any URL
	// (Parse: a fragment too).
	for _, parse := range []func(string) (*url.URL, error){url.ParseRequestURI, url.Parse} {
		u, err := parse(raw)
		if err != nil {
			continue
		}
		for _, last := range []int{1, 2, 5} {
			got := pageLinks(u, last)
			for n := -1; n <= last+1; n++ {
				if g, w := got(n), oldPageLink(u, last, n); g != w {
					t.Fatalf("%q last %d page %d: got %v, want %v", raw, last, n, g, w)
				}
			}
		}
	}
}

func FuzzPageLinksMatchValuesEncode(f *testing.F) {
	for _, s := range pageLinkSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkPageLinks(t, raw) })
}

// BenchmarkPageLinks is the two links of an empty lookup page (first and
// last), built once per request by pageLinks and, for comparison, each
// from a fresh parse of the query as before.
func BenchmarkPageLinks(b *testing.B) {
	u, err := url.ParseRequestURI("/v2/payout/payments?external_id=req-7f3a9c1e-0001&per_page=100")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("once", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			link := pageLinks(u, 1)
			_, _ = link(1), link(1)
		}
	})
	b.Run("per-link", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = oldPageLink(u, 1, 1), oldPageLink(u, 1, 1)
		}
	})
}
