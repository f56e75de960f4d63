package track

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// The two verified vectors of shared/wompi-api.md, sent as Wompi would,
// with the documented checksums pinned (not recomputed), are accepted and
// mapped to the right events.
func TestWebhookVectorsAccepted(t *testing.T) {
	const (
		secret = "prod_events_7b193c8afd7b47949f90d443cb1e1742"
		id     = "04a6e53d-a244-4140-ab9e-48fa541f9fe5"
		sumTx  = "82f0e769716170e202edfd348f604bd8461cdeeb416594cde563a890215a5282"
		sumPay = "639dc6bd2ac0104f090651c07773b6537f935623cf0ed04894f0687d4c9eebc7"
	)
	f := newFixture(t, fixtureOpts{})
	// The simulator does not hold the vectors' payout: its lookup by
	// reference is answered as Wompi would (adoptedTxFailure asks it).
	e, srv := f.engine(func(c *Config) { c.Wompi = listedRail{f.rail(f.wompi, secret), id, "batch-vector"} })
	ctx := context.Background()
	if err := f.sub.Record(ctx, submitted.Payout{PayoutID: id, BatchID: "batch-vector", OriginAccountID: wompitest.AccountMain,
		PaymentType: "PAYROLL", TotalAmountInCents: 7500000, TransactionCount: 1, SubmittedAt: t0},
		[]submitted.Transaction{{TransactionID: id, RequestID: "req-vector", BatchID: "batch-vector", PayoutID: id,
			AmountInCents: 7500000, OriginAccountID: wompitest.AccountMain}}, t0); err != nil {
		t.Fatal(err)
	}
	txBody := `{"event":"transaction.updated","data":{"transaction":{"id":"` + id + `","payoutId":"` + id + `",` +
		`"amountInCents":7500000,"status":"FAILED","payee":{"name":"John Doe","document":"1000000000","bank":"BANCOLOMBIA",` +
		`"accountType":"AHORROS","accountNumber":"1234567007","email":"j@example.co"},` +
		`"failureReason":{"code":"D07","message":"Account number does not exist"},"currency":"COP",` +
		`"appliedAt":null,"createdAt":"2025-05-19T16:00:00.000Z"}},` +
		`"signature":{"properties":["transaction.id","transaction.status","transaction.amountInCents"],"checksum":"` + sumTx + `"},` +
		`"timestamp":1747673128600,"sentAt":"2025-05-19T16:45:28.600Z"}`
	payBody := `{"event":"payout.updated","data":{"payout":{"id":"` + id + `","reference":"batch-vector","amountInCents":7500000,` +
		`"paymentType":"PAYROLL","status":"TOTAL_PAYMENT","totalTransactions":1,"currency":"COP"}},` +
		`"signature":{"properties":["payout.id","payout.status","payout.amountInCents"],"checksum":"` + sumPay + `"},` +
		`"timestamp":1747673128600,"sentAt":"2025-05-19T16:45:28.600Z"}`
	// Checksum in the body only, then in the header only (body checksum blanked).
	if code := post(t, srv.URL, []byte(txBody), ""); code != http.StatusOK {
		t.Fatalf("FAILED vector: %d", code)
	}
	if code := post(t, srv.URL, []byte(strings.Replace(payBody, sumPay, "", 1)), sumPay); code != http.StatusOK {
		t.Fatalf("TOTAL_PAYMENT vector: %d", code)
	}

	evs := f.statusEvents()
	if len(evs) != 1 {
		t.Fatalf("status events: %d, want 1", len(evs))
	}
	sc := evs[0]
	if sc.RequestID != "req-vector" || sc.Status != payout.StatusFailed || deref(sc.ReasonCode) != "D07" ||
		deref(sc.ReasonMessage) != "Account number does not exist" || deref(sc.TransactionID) != id ||
		deref(sc.PayoutID) != id || deref(sc.BatchID) != "batch-vector" || sc.Source != payout.SourceWebhook ||
		sc.AmountInCents != 7500000 || sc.OriginAccountID != wompitest.AccountMain ||
		sc.EventID != payout.EventID("status", "req-vector", "FAILED", id) || sc.PreviousStatus != nil ||
		!sc.OccurredAt.Equal(time.UnixMilli(1747673128600)) {
		t.Fatalf("status event: %+v", sc)
	}
	bevs := f.batchEvents()
	if len(bevs) != 1 {
		t.Fatalf("batch events: %d, want 1", len(bevs))
	}
	bc := bevs[0]
	if bc.BatchID != "batch-vector" || bc.Status != payout.BatchTotalPayment || deref(bc.PayoutID) != id ||
		bc.PaymentType != payout.PaymentPayroll || bc.TotalAmountInCents != 7500000 || bc.TransactionCount != 1 ||
		bc.EventID != payout.EventID("batch", "batch-vector", "TOTAL_PAYMENT", id) || bc.Source != payout.SourceWebhook {
		t.Fatalf("batch event: %+v", bc)
	}
	if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultAccepted)); got != 2 {
		t.Fatalf("accepted webhooks metric: %v", got)
	}
	if got := testutil.ToFloat64(e.m.transitions.WithLabelValues("request", "WEBHOOK", "FAILED")); got != 1 {
		t.Fatalf("transitions metric: %v", got)
	}
}

// Every refusal answers its status, produces nothing and counts.
func TestWebhookRefusals(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine(nil)
	secret := f.sim.Config().EventsSecret
	c := f.submit(true, f.payee("1234567890"))
	tx := c.txs[0]
	good, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "APPROVED", nil, t0)
	wrong, wrongSum := txWebhook(t, "not-the-secret", tx.ID, c.payoutID, tx.AmountInCents, "APPROVED", nil, t0)

	var env map[string]any
	if err := json.Unmarshal(good, &env); err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(good), `"amountInCents":`, `"amountInCents":1`, 1)
	noSig := strings.Replace(string(good), sum, "", 1)
	delete(env, "signature")
	noSigBlock, _ := json.Marshal(env)
	unknownType := strings.Replace(string(good), "transaction.updated", "transaction.created", 1)
	huge := `{"event":"transaction.updated","pad":"` + strings.Repeat("x", 1<<20) + `"}`

	for _, tc := range []struct {
		name, body, sum string
		code            int
		result          string
	}{
		{"tampered body", tampered, sum, 401, ResultBadSig},
		{"tampered body, body checksum", tampered, "", 401, ResultBadSig},
		{"wrong secret", string(wrong), wrongSum, 401, ResultBadSig},
		{"missing checksum", noSig, "", 401, ResultBadSig},
		{"missing signature block", string(noSigBlock), "", 401, ResultBadSig},
		{"malformed JSON", `{"event":"transaction.updated","data":{`, "", 400, ResultMalformed},
		{"not an object", `[1,2,3]`, "", 400, ResultMalformed},
		{"larger than 1 MiB", huge, "", 413, ResultTooLarge},
		{"unknown event type", unknownType, sum, 202, ResultUnknownType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.m.webhooks.WithLabelValues(tc.result))
			if code := post(t, srv.URL, []byte(tc.body), tc.sum); code != tc.code {
				t.Fatalf("status %d, want %d", code, tc.code)
			}
			if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(tc.result)); got != before+1 {
				t.Fatalf("%s metric went %v -> %v", tc.result, before, got)
			}
		})
	}
	if got := testutil.ToFloat64(e.m.sigFailures); got != 5 {
		t.Fatalf("signature failures metric: %v, want 5", got)
	}
	// A body streamed without Content-Length is cut at the limit too.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+WebhookPath, strings.NewReader(huge))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("chunked oversize body: %d", resp.StatusCode)
	}
	if resp, err := http.Get(srv.URL + WebhookPath); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp, err)
	}
	if n := len(f.statusEvents()); n != 0 {
		t.Fatalf("%d events produced by refused webhooks", n)
	}
	// The untouched webhook is accepted: the refusals were about the body.
	if code := post(t, srv.URL, good, sum); code != 200 {
		t.Fatalf("good webhook: %d", code)
	}
	if n := len(f.statusEvents()); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
}

// The simulator sends every webhook twice: each transition is produced
// once.
func TestDuplicatedWebhooksEmitOnce(t *testing.T) {
	f := newFixture(t, fixtureOpts{sim: wompitest.Config{Faults: wompitest.Faults{WebhookDuplicateRate: 1}}})
	e, srv := f.engine(nil)
	f.sim.SetWebhookURL(srv.URL + WebhookPath)
	c := f.submit(true, f.payee("1234567890"), f.payee("1234567007"), f.payee("1234567891"))
	f.sim.SettleAll()
	f.waitHooks()
	if st := f.sim.WebhookStats(); st.Duplicated == 0 {
		t.Fatalf("simulator duplicated nothing: %+v", st)
	}
	evs := f.statusEvents()
	checkMonotonic(t, evs)
	byKey := transitions(evs)
	for _, tx := range c.txs {
		want := "APPROVED"
		if strings.HasSuffix(tx.PayeeInfo.AccountNumber, "007") || tx.Status == wompi.TransactionFailed {
			want = "FAILED"
		}
		if got := byKey[tx.Reference+"/"+want]; len(got) != 1 {
			t.Errorf("%s %s: %d events, want 1", tx.Reference, want, len(got))
		}
	}
	if len(evs) != 3 {
		t.Fatalf("%d status events, want 3", len(evs))
	}
	batches := map[payout.BatchStatus]int{}
	for _, b := range f.batchEvents() {
		batches[b.Status]++
	}
	// payout.updated PENDING (creation), PARTIAL_PAYMENT, TOTAL_PAYMENT:
	// each once although each arrived twice.
	for st, n := range batches {
		if n != 1 {
			t.Errorf("batch status %s emitted %d times", st, n)
		}
	}
	if batches[payout.BatchTotalPayment] != 1 {
		t.Errorf("no TOTAL_PAYMENT: %v", batches)
	}
	if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultDuplicate)); got < 3 {
		t.Fatalf("duplicate webhooks metric: %v", got)
	}
}

// APPROVED then a late PENDING for the same transaction (and TOTAL_PAYMENT
// then a late PENDING for its batch): the late ones emit nothing.
func TestReorderedWebhooksNeverRegress(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine(nil)
	secret := f.sim.Config().EventsSecret
	c := f.submit(true, f.payee("1234567890"))
	tx := c.txs[0]
	f.sim.SettleAll()

	for _, st := range []string{"APPROVED", "PENDING", "APPROVED"} {
		body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, st, nil, t0)
		if code := post(t, srv.URL, body, sum); code != 200 {
			t.Fatalf("%s: %d", st, code)
		}
	}
	for _, st := range []string{"TOTAL_PAYMENT", "PENDING", "PARTIAL_PAYMENT"} {
		body, sum := payoutWebhook(t, secret, c.payoutID, c.batchID, tx.AmountInCents, st, t0)
		if code := post(t, srv.URL, body, sum); code != 200 {
			t.Fatalf("batch %s: %d", st, code)
		}
	}
	evs := f.statusEvents()
	if len(evs) != 1 || evs[0].Status != payout.StatusApproved {
		t.Fatalf("status events: %+v", evs)
	}
	bevs := f.batchEvents()
	if len(bevs) != 1 || bevs[0].Status != payout.BatchTotalPayment {
		t.Fatalf("batch events: %+v", bevs)
	}
	if got := testutil.ToFloat64(e.m.regressions.WithLabelValues("request")); got != 1 {
		t.Fatalf("request regressions suppressed: %v", got)
	}
	if got := testutil.ToFloat64(e.m.regressions.WithLabelValues("batch")); got != 2 {
		t.Fatalf("batch regressions suppressed: %v", got)
	}
}

// Without the dispatcher's hand-off in Redis, the tracker maps the
// transaction through Wompi: its reference is the requestId, its payout's
// reference the batchId; and PENDING then APPROVED carries previousStatus.
func TestWebhookWithoutHandOffAsksWompi(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	_, srv := f.engine(nil)
	secret := f.sim.Config().EventsSecret
	c := f.submit(false, f.payee("1234567890"))
	tx := c.txs[0]
	body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "PENDING", nil, t0)
	if code := post(t, srv.URL, body, sum); code != 200 {
		t.Fatalf("PENDING: %d", code)
	}
	f.sim.SettleAll()
	body, sum = txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "APPROVED", nil, t0)
	if code := post(t, srv.URL, body, sum); code != 200 {
		t.Fatalf("APPROVED: %d", code)
	}
	evs := f.statusEvents()
	if len(evs) != 2 {
		t.Fatalf("events: %+v", evs)
	}
	// Without the hand-off the origin account comes from the payout's
	// accountId, which only our simulator sends [ours]: with the published
	// shapes alone it stays empty.
	wantOrigin := wompitest.AccountMain
	if f.sim.Config().PublishedOnly {
		wantOrigin = ""
	}
	for i, want := range []payout.Status{payout.StatusPending, payout.StatusApproved} {
		ev := evs[i]
		if ev.Status != want || ev.RequestID != tx.Reference || deref(ev.BatchID) != c.batchID ||
			ev.OriginAccountID != wantOrigin || deref(ev.TransactionID) != tx.ID {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if evs[1].PreviousStatus == nil || *evs[1].PreviousStatus != payout.StatusPending {
		t.Fatalf("previousStatus: %v", evs[1].PreviousStatus)
	}
	// A transaction Wompi does not know is logged and acknowledged.
	body, sum = txWebhook(t, secret, "no-such-tx", c.payoutID, 1, "APPROVED", nil, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusAccepted {
		t.Fatalf("unknown transaction: %d", code)
	}
}

// A webhook while Kafka is down gets 503 and records nothing as emitted;
// the retry once Kafka is back produces the event.
func TestKafkaDownAnswers503ThenRetrySucceeds(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	port := mustFreePort(t)
	addr := "127.0.0.1:" + itoa(port)
	e, srv := f.engine(func(c *Config) {
		c.Kafka = kafkaOpts(addr)
		c.ProduceTimeout = time.Second
	})
	secret := f.sim.Config().EventsSecret
	c := f.submit(true, f.payee("1234567007"))
	tx := c.txs[0]
	body, sum := txWebhook(t, secret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "Account number does not exist"}, t0)
	for range 2 {
		if code := post(t, srv.URL, body, sum); code != http.StatusServiceUnavailable {
			t.Fatalf("with Kafka down: %d, want 503", code)
		}
	}
	if st, err := e.statuses.last(context.Background(), kindRequest, tx.Reference); err != nil || st != "" {
		t.Fatalf("status recorded as emitted while Kafka was down: %q %v", st, err)
	}
	if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultUnavailable)); got != 2 {
		t.Fatalf("unavailable metric: %v", got)
	}
	// Kafka comes back on the same address.
	// Kafka comes back on the same address; Wompi keeps retrying until the
	// producer has reconnected.
	k := startKafkaAt(t, port, f.topics.Status, f.topics.BatchStatus)
	code := 0
	for range 20 {
		t0 := time.Now()
		code = post(t, srv.URL, body, sum)
		t.Logf("retry: %d in %v", code, time.Since(t0))
		if code == http.StatusOK {
			break
		}
	}
	if code != http.StatusOK {
		t.Fatalf("with Kafka back: %d", code)
	}
	if st, _ := e.statuses.last(context.Background(), kindRequest, tx.Reference); st != "FAILED" {
		t.Fatalf("status after the produce: %q", st)
	}
	evs := readStatus(t, k, f, f.topics.Status)
	if len(evs) == 0 {
		t.Fatal("no event once Kafka is back")
	}
	// A produce that timed out may still land: then it is the same event
	// (same eventId) that consumers dedupe, never a different one.
	for _, ev := range evs {
		if ev.Status != payout.StatusFailed || deref(ev.ReasonCode) != "D07" || ev.EventID != evs[0].EventID {
			t.Fatalf("events once Kafka is back: %+v", evs)
		}
	}
	n := len(evs)
	if n > 1 {
		t.Logf("%d copies of the same event (a timed-out produce landed late)", n)
	}
	// And the next delivery is a duplicate.
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("redelivery: %d", code)
	}
	if got := len(readStatus(t, k, f, f.topics.Status)); got != n {
		t.Fatalf("%d events after a redelivery, had %d", got, n)
	}
}

func TestWebhookServerTimeouts(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, _ := f.engine(nil)
	srv := NewWebhookServer(":0", e)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Fatalf("webhook server without slowloris protection: %+v", srv)
	}
	if e.cfg.RequestTimeout >= srv.WriteTimeout {
		t.Fatalf("request timeout %v must end before the write timeout %v", e.cfg.RequestTimeout, srv.WriteTimeout)
	}
}

// signTx signs a transaction.updated over the given properties (nil: the
// documented three) with the transaction fields in tx.
func signTx(t testing.TB, secret string, tx map[string]any, props []string) ([]byte, string) {
	t.Helper()
	if props == nil {
		props = []string{"transaction.id", "transaction.status", "transaction.amountInCents"}
	}
	body, sum, err := wompi.SignEvent(wompi.EventTransactionUpdated, map[string]any{"transaction": tx}, props, t0, secret)
	if err != nil {
		t.Fatal(err)
	}
	return body, sum
}

// forgedProbes are the forgeries of issue 15 item 1, built from genuine
// signatures over our own fixture: A and B are two transactions of payout
// P (batch b), C one of payout P2 (batch b2). Each must be refused with 401
// and produce nothing.
func forgedProbes(t testing.TB, secret string, p, p2, b, b2 string, a, bTx, c wompi.Transaction) []struct {
	name string
	body []byte
	sum  string
} {
	type probe = struct {
		name string
		body []byte
		sum  string
	}
	txA := func(status string) map[string]any {
		return map[string]any{"id": a.ID, "payoutId": p, "amountInCents": a.AmountInCents, "status": status, "currency": "COP"}
	}
	var out []probe
	add := func(name string, body []byte, sum string) { out = append(out, probe{name, body, sum}) }

	// "ID"/"Status" appended to a signed FAILED event of A: the signature
	// reads the exact-case keys, encoding/json the later case variants.
	failedA, sumA := signTx(t, secret, txA("FAILED"), nil)
	add("case-variant ID and Status appended", []byte(strings.Replace(string(failedA), `"status":"FAILED"`,
		`"status":"FAILED","ID":"`+bTx.ID+`","Status":"CANCELLED"`, 1)), sumA)
	add("case-variant ID and Status, checksum in the body", []byte(strings.Replace(string(failedA), `"status":"FAILED"`,
		`"status":"FAILED","ID":"`+bTx.ID+`","Status":"CANCELLED"`, 1)), "")
	add("duplicate status key", []byte(strings.Replace(string(failedA), `"status":"FAILED"`,
		`"status":"FAILED","status":"FAILED"`, 1)), sumA)
	add("duplicate event key", []byte(strings.Replace(string(failedA), `"event":"transaction.updated"`,
		`"event":"transaction.updated","event":"transaction.updated"`, 1)), sumA)
	add("case-variant Data object", []byte(strings.Replace(string(failedA), `"event":"transaction.updated"`,
		`"event":"transaction.updated","Data":{"transaction":{"id":"`+bTx.ID+`","payoutId":"`+p+`","status":"CANCELLED","amountInCents":`+itoa(int(bTx.AmountInCents))+`}}`, 1)), sumA)

	// A payout.updated signature relabelled transaction.updated, with a
	// transaction added to its data.
	pay, psum, err := wompi.SignEvent(wompi.EventPayoutUpdated, map[string]any{"payout": map[string]any{"id": p, "reference": b,
		"status": "PENDING", "amountInCents": a.AmountInCents + bTx.AmountInCents, "totalTransactions": 2}},
		[]string{"payout.id", "payout.status", "payout.amountInCents"}, t0, secret)
	if err != nil {
		t.Fatal(err)
	}
	relabelled := strings.Replace(string(pay), `"event":"payout.updated"`, `"event":"transaction.updated"`, 1)
	relabelled = strings.Replace(relabelled, `"data":{`, `"data":{"transaction":{"id":"`+a.ID+`","payoutId":"`+p+
		`","status":"APPROVED","amountInCents":`+itoa(int(a.AmountInCents))+`},`, 1)
	add("payout.updated signature relabelled transaction.updated", []byte(relabelled), psum)

	// The unsigned payoutId moved to another payout of ours.
	movedPayout := strings.Replace(string(failedA), `"payoutId":"`+p+`"`, `"payoutId":"`+p2+`"`, 1)
	add("unsigned payoutId changed", []byte(movedPayout), sumA)

	// A signature that does not cover the amount, with the amount changed.
	noAmount, nsum := signTx(t, secret, txA("APPROVED"), []string{"transaction.id", "transaction.status"})
	add("amount not signed", noAmount, nsum)
	add("amount not signed, and changed", []byte(strings.Replace(string(noAmount), `"amountInCents":`+itoa(int(a.AmountInCents)),
		`"amountInCents":1`, 1)), nsum)
	// A signature that covers neither the id nor the status.
	onlyAmount, osum := signTx(t, secret, txA("APPROVED"), []string{"transaction.amountInCents"})
	add("id and status not signed", onlyAmount, osum)
	// A signed amount that is not the one we recorded.
	wrongAmount := txA("APPROVED")
	wrongAmount["amountInCents"] = a.AmountInCents + 1
	wa, wsum := signTx(t, secret, wrongAmount, nil)
	add("signed amount differs from our record", wa, wsum)

	// payout.updated: the unsigned reference moved to another batch of
	// ours; a signed amount that is not the batch's total.
	pb, pbsum, err := wompi.SignEvent(wompi.EventPayoutUpdated, map[string]any{"payout": map[string]any{"id": p, "reference": b2,
		"status": "TOTAL_PAYMENT", "amountInCents": a.AmountInCents + bTx.AmountInCents, "totalTransactions": 2}},
		[]string{"payout.id", "payout.status", "payout.amountInCents"}, t0, secret)
	if err != nil {
		t.Fatal(err)
	}
	add("payout reference moved to another batch", pb, pbsum)
	pa, pasum, err := wompi.SignEvent(wompi.EventPayoutUpdated, map[string]any{"payout": map[string]any{"id": p2, "reference": b2,
		"status": "TOTAL_PAYMENT", "amountInCents": c.AmountInCents + 5, "totalTransactions": 1}},
		[]string{"payout.id", "payout.status", "payout.amountInCents"}, t0, secret)
	if err != nil {
		t.Fatal(err)
	}
	add("payout amount differs from our record", pa, pasum)
	// A transaction.updated signature relabelled payout.updated.
	add("transaction.updated signature relabelled payout.updated", []byte(strings.Replace(strings.Replace(string(failedA),
		`"event":"transaction.updated"`, `"event":"payout.updated"`, 1), `"data":{`,
		`"data":{"payout":{"id":"`+p+`","reference":"`+b+`","status":"TOTAL_PAYMENT","amountInCents":1},`, 1)), sumA)
	return out
}

// Issue 15 item 1: every forgery built from a genuine signature is refused
// with 401 and nothing reaches Kafka; the genuine events still pass.
func TestForgedWebhooksRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine(nil)
	secret := f.sim.Config().EventsSecret
	c1 := f.submit(true, f.payee("1234567890"), f.payee("1234567891"))
	c2 := f.submit(true, f.payee("1234567892"))
	a, b, c := c1.txs[0], c1.txs[1], c2.txs[0]
	for _, pr := range forgedProbes(t, secret, c1.payoutID, c2.payoutID, c1.batchID, c2.batchID, a, b, c) {
		t.Run(pr.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultBadSig))
			if code := post(t, srv.URL, pr.body, pr.sum); code != http.StatusUnauthorized {
				t.Errorf("answered %d, want 401", code)
			}
			if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultBadSig)); got != before+1 {
				t.Errorf("bad_signature metric %v -> %v", before, got)
			}
		})
	}
	if evs, bevs := f.statusEvents(), f.batchEvents(); len(evs)+len(bevs) != 0 {
		t.Fatalf("forged webhooks produced %d status and %d batch events: %+v %+v", len(evs), len(bevs), evs, bevs)
	}
	// The genuine ones are still accepted.
	body, sum := txWebhook(t, secret, a.ID, c1.payoutID, a.AmountInCents, "FAILED", nil, t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("genuine FAILED: %d", code)
	}
	body, sum = payoutWebhook(t, secret, c1.payoutID, c1.batchID, a.AmountInCents+b.AmountInCents, "PENDING", t0)
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("genuine payout PENDING: %d", code)
	}
	// A genuine event that also signs the payoutId passes.
	body, sum = signTx(t, secret, map[string]any{"id": b.ID, "payoutId": c1.payoutID, "amountInCents": b.AmountInCents, "status": "FAILED"},
		[]string{"transaction.payoutId", "transaction.id", "transaction.status", "transaction.amountInCents"})
	if code := post(t, srv.URL, body, sum); code != http.StatusOK {
		t.Fatalf("genuine FAILED signing the payoutId: %d", code)
	}
	evs := f.statusEvents()
	if len(evs) != 2 || evs[0].RequestID != a.Reference || evs[0].Status != payout.StatusFailed ||
		evs[1].RequestID != b.Reference || evs[1].Status != payout.StatusFailed {
		t.Fatalf("status events: %+v", evs)
	}
}

// amplificationBody is issue 15 item 3's body: one large value under data,
// named times times by an unsigned property list, alternately as the
// object and as the string inside it.
func amplificationBody(value, times int) []byte {
	props := make([]string, times)
	for i := range props {
		props[i] = "transaction"
		if i%2 == 1 {
			props[i] = "transaction.blob"
		}
	}
	list, _ := json.Marshal(props)
	return []byte(`{"event":"transaction.updated","data":{"transaction":{"id":"t","status":"APPROVED","amountInCents":1,"blob":"` +
		strings.Repeat("x", value) + `"}},"signature":{"properties":` + string(list) + `,"checksum":"00"},"timestamp":1}`)
}

// Issue 15 item 3: one unsigned webhook that names a large value many
// times is refused (401) after work bounded by its own size.
func TestWebhookAmplificationBounded(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, _ := f.engine(nil)
	h := e.Handler()
	for _, tc := range []struct {
		name         string
		value, times int
	}{
		{"60 KB body", 56 << 10, 200},
		{"400 KB named 2000 times", 400 << 10, 2000},
		{"400 KB named 20 times", 400 << 10, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := amplificationBody(tc.value, tc.times)
			rec := httptest.NewRecorder()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body)))
			runtime.ReadMemStats(&after)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("answered %d, want 401", rec.Code)
			}
			// Generous: the body, its parse, and whatever the Kafka and
			// Redis clients allocate meanwhile.
			allocated := after.TotalAlloc - before.TotalAlloc
			if limit := uint64(20*len(body)) + 8<<20; allocated > limit {
				t.Fatalf("a %d-byte body allocated %d bytes (limit %d)", len(body), allocated, limit)
			}
			t.Logf("%d-byte body: %d bytes allocated", len(body), allocated)
		})
	}
	if n := len(f.statusEvents()); n != 0 {
		t.Fatalf("%d events produced", n)
	}
}

// Issue 15 item 3: past MaxConcurrentWebhooks, a webhook is answered 503
// with Retry-After before its body is read, and counted as overloaded; the
// next one once a slot is free is handled.
func TestWebhookConcurrencyLimit(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e, srv := f.engine(func(c *Config) { c.MaxConcurrentWebhooks = 1 })
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+WebhookPath, pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write([]byte(`{"event":`)) // the slow sender holds the only slot
	deadline := time.Now().Add(10 * time.Second)
	for len(e.hooks) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first webhook never took its slot")
		}
		time.Sleep(5 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+WebhookPath, strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second webhook: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := testutil.ToFloat64(e.m.webhooks.WithLabelValues(ResultOverloaded)); got != 1 {
		t.Fatalf("overloaded metric: %v", got)
	}
	pw.Write([]byte(`"x"}`))
	pw.Close()
	if code := <-done; code != http.StatusUnauthorized {
		t.Fatalf("slow webhook: %d, want 401 (unsigned)", code)
	}
	if code := post(t, srv.URL, []byte(`{}`), ""); code != http.StatusUnauthorized {
		t.Fatalf("after the slot was freed: %d, want 401", code)
	}
}
