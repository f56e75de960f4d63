package wepayout_test

// The tracker calls ParseWebhook on the unsigned body before any signature
// is checked (pkg/track/single.go handleWEpayout), so what it allocates for
// a hostile body matters. These tests measure it with runtime.MemStats.

import (
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// fillWebhook fills a webhook body up to size with rep repeated.
func fillWebhook(size int, head, rep, tail string) []byte {
	var b strings.Builder
	b.WriteString(head)
	for b.Len()+len(rep)+len(tail) <= size {
		b.WriteString(rep)
	}
	b.WriteString(tail)
	return []byte(b.String())
}

func measureParse(body []byte) (alloc, mallocs uint64, d time.Duration, err error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := time.Now()
	_, err = wepayout.ParseWebhook(body)
	d = time.Since(st)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs, d, err
}

// TestParseWebhookUnsignedBodiesBounded: unsigned 1 MiB bodies made of
// many small values that each went through a json.Unmarshaler of the
// Webhook (ID, StatusRef, Time: up to 23 times the body before
// maxWebhookSeparators), of escaped strings, or of bytes that are not
// UTF-8. None may allocate more than 4 times its size.
func TestParseWebhookUnsignedBodiesBounded(t *testing.T) {
	const size = 1<<20 - 16
	head := `{"invoice":"req-1",`
	tail := `"id":1,"status":{"id":3}}`
	cases := []struct {
		name string
		body []byte
	}{
		{"repeated id (ID.UnmarshalJSON)", fillWebhook(size, head, `"id":1,`, tail)},
		{"repeated ID, case variant", fillWebhook(size, head, `"ID":1,`, tail)},
		{"repeated string id", fillWebhook(size, head, `"id":"1",`, tail)},
		{"repeated status (StatusRef.UnmarshalJSON)", fillWebhook(size, head, `"status":{"id":1},`, tail)},
		{"repeated updated_at (Time.UnmarshalJSON)", fillWebhook(size, head, `"updated_at":"2024-09-25 15:55:18",`, tail)},
		{"repeated null updated_at", fillWebhook(size, head, `"updated_at":null,`, tail)},
		{"repeated status_detail", fillWebhook(size, head, `"status_detail":{"code":"a","detail":"b"},`, tail)},
		{"repeated invoice", fillWebhook(size, head, `"invoice":"x",`, tail)},
		{"repeated unknown key", fillWebhook(size, head, `"zz":1,`, tail)},
		{"unknown array of small values", fillWebhook(size, head+`"zz":[`, `0,`, `0],`+tail)},
		{"escaped invoice", fillWebhook(size, `{"id":1,"status":{"id":3},"invoice":"`, `\n`, `"}`)},
		{"escaped status name", fillWebhook(size, `{"id":1,"invoice":"x","status":{"id":3,"name":"`, `\u0041`, `"}}`)},
		{"3-byte runes in invoice", fillWebhook(size, `{"id":1,"status":{"id":3},"invoice":"\n`, "€", `"}`)},
		{"not UTF-8 (refused)", fillWebhook(size, `{"id":1,"status":{"id":3},"invoice":"`, "\xff", `"}`)},
	}
	for _, tc := range cases {
		if len(tc.body) > 1<<20 {
			t.Fatalf("%s: %d bytes", tc.name, len(tc.body))
		}
		alloc, mallocs, d, err := measureParse(tc.body)
		if err != nil && !errors.Is(err, wepayout.ErrMalformedWebhook) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ratio := float64(alloc) / float64(len(tc.body))
		t.Logf("%-45s %7d B body: %9d B allocated (%5.1fx), %7d mallocs, %8v, err=%v", tc.name, len(tc.body), alloc, ratio, mallocs, d.Round(time.Microsecond), err != nil)
		if ratio > 4 {
			t.Errorf("%s: an unsigned %d-byte body allocated %d bytes (%.1fx)", tc.name, len(tc.body), alloc, ratio)
		}
	}
}

// TestParseWebhookValidUTF8Accepted: the refusal does not touch
// valid UTF-8: accents, 4-byte emoji, U+2028, an interior U+FEFF and
// escapes beside multi-byte runes parse and read unchanged; an accented
// invoice verifies against a signature over the same string. A leading
// BOM was and is refused ("not a JSON object"), as encoding/json would.
func TestParseWebhookValidUTF8Accepted(t *testing.T) {
	for _, inv := range []string{"req-José", "Bogotá-1", "pago-😀🇨🇴", "a\u2028b\u2029", "\uFEFFx", "Ñandú\u00e9"} {
		esc := strings.NewReplacer("\u2028", `\u2028`, "\u2029", `\u2029`).Replace(inv)
		body := []byte(`{"id":7,"invoice":"` + esc + `","status":{"id":3,"name":"Pagó"},"status_detail":{"code":"WE0001","detail":"Conta inválida ✓"},"updated_at":"2024-09-25 15:55:18"}`)
		w, err := wepayout.ParseWebhook(body)
		if err != nil || w.Invoice != inv || w.Status.Name != "Pagó" || w.StatusDetail.Detail != "Conta inválida ✓" {
			t.Fatalf("%q: %+v %v", inv, w, err)
		}
		rec := rail.PayoutRequest{ID: inv, Currency: "BRL", AmountInCents: 5034}
		h := http.Header{}
		h.Set(wepayout.HeaderSignature, wepayout.SignatureHeader(inv, "BRL", 5034, hookKey))
		if v, err := wepayout.VerifyWebhook(h, body, rec, hookKey); err != nil || v.Invoice != inv {
			t.Fatalf("%q: verify %v", inv, err)
		}
	}
	if _, err := wepayout.ParseWebhook([]byte("\uFEFF{\"id\":1,\"invoice\":\"x\",\"status\":{\"id\":3}}")); !errors.Is(err, wepayout.ErrMalformedWebhook) {
		t.Fatalf("leading BOM: %v", err)
	}
}

// The separators counted are those outside strings: commas, colons and
// brackets inside a string (behind an escaped quote too) are text. A body
// of 256 separators parses; one more is refused.
func TestParseWebhookSeparatorCap(t *testing.T) {
	text := strings.Repeat(`,:{[`, 5000)
	for _, detail := range []string{text, `x\"` + text, `\\` + text} {
		body := `{"id":1,"invoice":"req-1","status":{"id":6},"status_detail":{"code":"WE0001","detail":"` + detail + `"}}`
		if _, err := wepayout.ParseWebhook([]byte(body)); err != nil {
			t.Fatalf("separators inside a string counted: %v", err)
		}
	}
	// {"id":1,"invoice":"req-1","status":{"id":6},"zz":[0,...]}: 11
	// separators (3 brackets, 5 colons, 3 commas) and one per comma of
	// the array.
	body := func(extra int) []byte {
		return []byte(`{"id":1,"invoice":"req-1","status":{"id":6},"zz":[0` + strings.Repeat(",0", extra) + `]}`)
	}
	if _, err := wepayout.ParseWebhook(body(256 - 11)); err != nil {
		t.Fatalf("256 separators: %v", err)
	}
	if _, err := wepayout.ParseWebhook(body(256 - 10)); !errors.Is(err, wepayout.ErrMalformedWebhook) || !strings.Contains(err.Error(), "more than 256 values") {
		t.Fatalf("257 separators: %v", err)
	}
}
