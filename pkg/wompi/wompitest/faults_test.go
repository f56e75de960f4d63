package wompitest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func TestWebhookRetries(t *testing.T) {
	rcv := newReceiver(t, "sec")
	s, c, _ := start(t, wompitest.Config{EventsSecret: "sec", WebhookWorkers: 1})
	s.SetWebhookURL(rcv.URL)
	ctx := context.Background()

	rcv.fail(2) // two 500s, then 2xx: delivered on the 3rd attempt
	if _, err := c.CreatePayout(ctx, "wr-1", batchr("wr-1", wompitest.AccountMain, txr("wr-1", "1234567890", 1))); err != nil {
		t.Fatal(err)
	}
	waitHooks(t, s)
	evs, hits := rcv.snapshot()
	if len(evs) != 1 || hits != 3 {
		t.Fatalf("events %d hits %d", len(evs), hits)
	}
	rcv.fail(100) // never 2xx: 1 + 3 retries, then given up
	if _, err := c.CreatePayout(ctx, "wr-2", batchr("wr-2", wompitest.AccountMain, txr("wr-2", "1234567890", 1))); err != nil {
		t.Fatal(err)
	}
	waitHooks(t, s)
	_, hits = rcv.snapshot()
	st := s.WebhookStats()
	if hits != 3+4 || st.Failed != 1 || st.Delivered != 1 || st.Attempts != 7 {
		t.Fatalf("hits %d stats %+v", hits, st)
	}
}

func TestWebhookFaults(t *testing.T) {
	rcv := newReceiver(t, "sec")
	s, c, _ := start(t, wompitest.Config{EventsSecret: "sec", WebhookWorkers: 1})
	s.SetWebhookURL(rcv.URL)
	ctx := context.Background()
	create := func(ref string) {
		t.Helper()
		if _, err := c.CreatePayout(ctx, ref, batchr(ref, wompitest.AccountMain, txr(ref, "1234567890", 1))); err != nil {
			t.Fatal(err)
		}
		waitHooks(t, s)
	}
	count := func() int { evs, _ := rcv.snapshot(); return len(evs) }

	s.SetFaults(wompitest.Faults{WebhookDropRate: 1})
	create("drop")
	if n := count(); n != 0 || s.WebhookStats().Dropped != 1 {
		t.Fatalf("dropped: got %d events, stats %+v", n, s.WebhookStats())
	}

	s.SetFaults(wompitest.Faults{WebhookDuplicateRate: 1})
	create("dup")
	evs, _ := rcv.snapshot()
	if len(evs) != 2 || describe(evs[0]) != describe(evs[1]) {
		t.Fatalf("duplicated: %d events", len(evs))
	}

	s.SetFaults(wompitest.Faults{WebhookDelayRate: 1})
	create("late") // held back
	if n := count(); n != 2 {
		t.Fatalf("a delayed event was delivered at once: %d", n)
	}
	s.SetFaults(wompitest.Faults{})
	create("early") // goes first, then the held one
	evs, _ = rcv.snapshot()
	if len(evs) != 4 || evs[2].Payout.Reference != "early" || evs[3].Payout.Reference != "late" {
		t.Fatalf("reordered: %v", []string{describe(evs[2]), describe(evs[3])})
	}

	// A held event is also released on request (or after WebhookDelay).
	s.SetFaults(wompitest.Faults{WebhookDelayRate: 1})
	create("held")
	s.ReleaseDelayedWebhooks()
	waitHooks(t, s)
	if n := count(); n != 5 {
		t.Fatalf("released: %d", n)
	}
}

// The same seed and the same calls inject the same faults.
func TestFaultDiceAreSeeded(t *testing.T) {
	run := func(seed uint64) string {
		s, c, _ := start(t, wompitest.Config{Seed: seed, Faults: wompitest.Faults{ErrorRate: 0.5}})
		_ = s
		var b strings.Builder
		for range 40 {
			if _, err := c.Banks(context.Background()); err != nil {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b := run(7), run(7)
	if a != b || !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Fatalf("seed 7: %s vs %s", a, b)
	}
}

func TestFaultsDebugEndpointAndHealth(t *testing.T) {
	s, c, _ := start(t, wompitest.Config{})
	ctx := context.Background()
	if st, body := raw(t, s, "POST", "/_sim/faults", nil, []byte(`{"errorRate":1,"latency":"0s"}`)); st != 200 || body["errorRate"] != 1.0 {
		t.Fatalf("set faults: %d %v", st, body)
	}
	if _, err := c.Payout(ctx, "x"); !wompi.IsStatus(err, 503) {
		t.Fatalf("errorRate 1 via endpoint: %v", err)
	}
	// /health ignores errorRate; it has its own toggle.
	if h, err := c.Health(ctx); err != nil || h.Status != wompi.HealthHealthy {
		t.Fatalf("health: %+v %v", h, err)
	}
	raw(t, s, "POST", "/_sim/faults", nil, []byte(`{"unhealthy":true}`))
	if f := s.Faults(); !f.Unhealthy || f.ErrorRate != 1 {
		t.Fatalf("a POST merges: %+v", f)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != wompi.HealthUnhealthy {
		t.Fatalf("unhealthy: %+v %v", h, err)
	}
	for _, bad := range []string{`{"errorRate":2}`, `{"latency":"soon"}`, `nope`} {
		if st, _ := raw(t, s, "POST", "/_sim/faults", nil, []byte(bad)); st != 400 {
			t.Fatalf("%s: %d", bad, st)
		}
	}
	raw(t, s, "POST", "/_sim/faults", nil, []byte(`{"errorRate":0,"unhealthy":false}`))
	if _, err := c.Banks(ctx); err != nil {
		t.Fatalf("faults cleared: %v", err)
	}
	if st, body := raw(t, s, "POST", "/_sim/advance?by=1h", nil, nil); st != 200 || body["settled"] != 0.0 {
		t.Fatalf("advance: %d %v", st, body)
	}
	if got := s.Clock().Now(); !got.Equal(t0.Add(3600e9)) {
		t.Fatalf("clock %v", got)
	}
	if st, _ := raw(t, s, "POST", "/_sim/webhook", nil, []byte(`{"url":"http://127.0.0.1:1/x"}`)); st != 200 {
		t.Fatal("set webhook url")
	}
	if st, body := raw(t, s, "GET", "/_sim/webhook", nil, nil); st != 200 || body["url"] != "http://127.0.0.1:1/x" {
		t.Fatalf("get webhook url %v", body)
	}
	if st, body := raw(t, s, "GET", "/_sim/stats", nil, nil); st != 200 || body["webhooks"] == nil {
		t.Fatalf("stats %v", body)
	}
}

func TestDropResponseCommitsTheBatch(t *testing.T) {
	s, _, _ := start(t, wompitest.Config{Faults: wompitest.Faults{DropResponseRate: 1}})
	c := s.Client(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
	_, err := c.CreatePayout(context.Background(), "drop-1", batchr("drop-1", wompitest.AccountMain, txr("drop-1", "1234567890", 1)))
	if !wompi.IsOutcomeUnknown(err) || !wompi.IsRetryable(err) {
		t.Fatalf("client error: %v", err)
	}
	if e := s.BatchLedger()["drop-1"]; e.Accepted != 1 || e.IdempotencyKeys[0] != "drop-1" {
		t.Fatalf("ledger %+v", e)
	}
}

func multipartBody(t *testing.T, fields map[string]string, name, mime string, content []byte) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name="file"; filename=%q`, name)}
	h["Content-Type"] = []string{mime}
	p, _ := w.CreatePart(h)
	_, _ = p.Write(content)
	_ = w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

func TestFileUploadFieldsChecked(t *testing.T) {
	s, _, _ := start(t, wompitest.Config{})
	csv := wompi.EncodeWompiCSV([]wompi.WompiCSVRow{{LegalIDType: "CC", LegalID: "1", BankCode: "1007", AccountType: "AHORROS",
		AccountNumber: "1234567890", Name: "A", Email: "a@b.co", Amount: 100, Reference: "fu-1"}})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(csv)
	_ = zw.Close()
	base := map[string]string{"reference": "fu", "fileType": "WOMPI", "accountId": wompitest.AccountMain, "paymentType": "OTHER"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name       string
		fields     map[string]string
		file, mime string
		content    []byte
		want       int
		msg        string
	}{
		{"plain csv", base, "p.csv", "text/csv", csv, 201, ""},
		{"gzip ok", with(map[string]string{"fileName": "plantilla-wompi.csv", "fileMime": "text/csv"}), "plantilla-wompi.csv.gz", "application/gzip", gz.Bytes(), 201, ""},
		{"gzip without fileName", with(map[string]string{"fileMime": "text/csv"}), "p.csv.gz", "application/gzip", gz.Bytes(), 400, "fileName"},
		{"gzip without fileMime", with(map[string]string{"fileName": "p.csv"}), "p.csv.gz", "application/gzip", gz.Bytes(), 400, "fileMime"},
		{"gzip wrong MIME", with(map[string]string{"fileName": "p.csv", "fileMime": "text/csv"}), "p.csv.gz", "text/csv", gz.Bytes(), 400, "application/gzip"},
		{"not gzip", with(map[string]string{"fileName": "p.csv", "fileMime": "text/csv"}), "p.csv.gz", "application/gzip", csv, 400, "gzip"},
		{"bad fileType", with(map[string]string{"fileType": "XLS"}), "p.csv", "text/csv", csv, 400, "fileType"},
		{"WOMPI must be csv", base, "p.txt", "text/plain", csv, 400, ".csv"},
		{"bad csv amount", base, "p.csv", "text/csv", []byte("CC,1,1007,AHORROS,1234567890,A,a@b.co,1.5,r\n"), 400, "amount"},
	}
	for i, tt := range tests {
		body, ctype := multipartBody(t, tt.fields, tt.file, tt.mime, tt.content)
		st, resp := raw(t, s, "POST", "/v1/payouts/file", map[string]string{"Content-Type": ctype, wompi.HeaderIdempotencyKey: fmt.Sprintf("fu-%d", i)}, body)
		if st != tt.want || !strings.Contains(fmt.Sprint(resp["message"]), tt.msg) {
			t.Errorf("%s: %d %v", tt.name, st, resp["message"])
		}
	}
}

func TestQueryValidation(t *testing.T) {
	s, _, _ := start(t, wompitest.Config{})
	for _, p := range []string{
		"/v1/payouts?fromDate=10-03-2026", "/v1/payouts?limit=0", "/v1/payouts?limit=100000",
		"/v1/payouts?page=-1", "/v1/accounts?status=OPEN", "/v1/limits?date=today", "/v1/transactions/r?status=PROCESSING",
		"/v1/payouts/x/transactions?status=DONE", "/v1/reports/payouts?periodicity=daily&reportType=x",
		"/v1/reports/presigned_url", "/v1/reports/presigned_url?reportExecutionId=x&reportIntegration=y",
		"/v1/reports/presigned_url?reportExecutionId=x", // reportIntegration is required [doc]
	} {
		if st, resp := raw(t, s, "GET", p, nil, nil); st != 400 {
			t.Errorf("%s: %d %v", p, st, resp)
		}
	}
	if st, _ := raw(t, s, "GET", "/v1/payouts/none/transactions", nil, nil); st != 404 {
		t.Errorf("unknown payout transactions: %d", st)
	}
	if st, resp := raw(t, s, "GET", "/v1/transactions/unknown", nil, nil); st != 200 || resp["data"].(map[string]any)["total"] != 0.0 {
		t.Errorf("unknown batch reference: %d %v", st, resp)
	}
}
