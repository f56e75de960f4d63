package track

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// FuzzWebhook throws arbitrary bodies and checksum headers at the webhook
// handler (real Redis, real Kafka wire protocol, two payouts of ours in the
// simulator and the hand-off): it never panics, never answers 5xx for bad
// input, answers 2xx only to a correctly signed event that cannot be read
// two ways, for which it has produced before answering, and produces
// nothing for an event it refuses. The seeds include issue 15's forged
// events (built from genuine signatures) and its amplification bodies.
func FuzzWebhook(f *testing.F) {
	k := testenv.Kafka(f)
	rs := testenv.Redis(f)
	sim := wompitest.NewTestServer(f, wompitest.Config{})
	wc, err := wompi.New(wompi.Config{BaseURL: sim.BaseURL(), APIKey: sim.Config().APIKey, PrincipalID: sim.Config().PrincipalID})
	if err != nil {
		f.Fatal(err)
	}
	codec, err := events.NewCodec(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	topics := events.DefaultTopics()
	topics.Status, topics.BatchStatus = k.Topic(f, "status", 1), k.Topic(f, "batch-status", 1)
	secret := sim.Config().EventsSecret
	reg := prometheus.NewRegistry()
	e, err := New(Config{Kafka: []kgo.Opt{kgo.SeedBrokers(k.Brokers()...)}, Codec: codec, Topics: topics, Redis: rs.Client(),
		Prefix: rs.Prefix(), Wompi: wompi.NewRail(wc, wompi.RailConfig{EventsSecret: secret}), Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(e.Close)
	h := e.Handler()

	f.Add([]byte(`{"event":"transaction.updated","data":{"transaction":{"id":"t1","payoutId":"p1","status":"APPROVED","amountInCents":100}},"signature":{"properties":["transaction.id","transaction.status"],"checksum":"00"},"timestamp":1}`), "")
	f.Add([]byte(`{"event":"nope"}`), "abc")
	f.Add(bytes.Repeat([]byte("x"), 2<<20), "")
	f.Add([]byte(`[1,2,3]`), "")
	// Issue 15 item 3: the amplification bodies.
	f.Add(amplificationBody(56<<10, 200), "")
	f.Add(amplificationBody(400<<10, 2000), "")
	// Issue 15 item 1: the forged events, over two payouts of ours.
	sub := submitted.New(rs.Client(), rs.Prefix(), 0)
	p1, b1, txs1 := fuzzPayout(f, wc, sub, "1234567890", "1234567891")
	p2, b2, txs2 := fuzzPayout(f, wc, sub, "1234567892")
	for _, pr := range forgedProbes(f, secret, p1, p2, b1, b2, txs1[0], txs1[1], txs2[0]) {
		f.Add(pr.body, pr.sum)
		if pr.sum != "" { // and with the checksum in the body only
			f.Add(pr.body, "")
		}
	}
	// A genuine one, so the fuzzer starts from an accepted event too.
	good, sum := txWebhook(f, secret, txs1[0].ID, p1, txs1[0].AmountInCents, "PENDING", nil, t0)
	f.Add(good, sum)

	f.Fuzz(func(t *testing.T, body []byte, checksum string) {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/wompi", bytes.NewReader(body))
		if checksum != "" {
			req.Header.Set("X-Event-Checksum", checksum)
		}
		before := produced(t, reg)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code := rec.Code
		signed := wompi.VerifyEvent(body, checksum, secret) == nil
		switch {
		case code >= 500 && !signed:
			t.Fatalf("bad input answered %d", code)
		case code < 300 && !signed:
			t.Fatalf("an unsigned event was accepted with %d", code)
		case code < 300 && ambiguous(body):
			t.Fatalf("a body with duplicate or case-variant keys was accepted with %d", code)
		case code != http.StatusRequestEntityTooLarge && len(body) > 1<<20 && !signed:
			t.Fatalf("a %d-byte body answered %d, want 413", len(body), code)
		case code >= 300 && produced(t, reg) != before:
			t.Fatalf("answered %d but produced %v events", code, produced(t, reg)-before)
		}
	})
}

// fuzzPayout creates a payout at the simulator and records the hand-off,
// as the dispatcher does.
func fuzzPayout(f *testing.F, wc *wompi.Client, sub *submitted.Store, accounts ...string) (payoutID, batchID string, txs []wompi.Transaction) {
	ctx := context.Background()
	batchID = fmt.Sprintf("fuzz-batch-%s", accounts[0])
	req := &wompi.CreatePayoutRequest{Reference: batchID, AccountID: wompitest.AccountMain, PaymentType: wompi.PaymentTypeProviders}
	for i, a := range accounts {
		req.Transactions = append(req.Transactions, wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1000000001",
			BankID: wompitest.BankID("1007"), AccountType: "AHORROS", AccountNumber: a, Name: "Ana", Email: "ana@example.co",
			Amount: int64(100000 * (i + 1)), Reference: batchID + "-" + a})
	}
	res, err := wc.CreatePayout(ctx, "key-"+batchID, req)
	if err != nil {
		f.Fatal(err)
	}
	var mapping []submitted.Transaction
	var total int64
	for tx, err := range wc.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			f.Fatal(err)
		}
		txs = append(txs, tx)
		total += tx.AmountInCents
		mapping = append(mapping, submitted.Transaction{TransactionID: tx.ID, RequestID: tx.Reference, BatchID: batchID,
			PayoutID: res.PayoutID, AmountInCents: tx.AmountInCents, OriginAccountID: wompitest.AccountMain})
	}
	if err := sub.Record(ctx, submitted.Payout{PayoutID: res.PayoutID, BatchID: batchID, OriginAccountID: wompitest.AccountMain,
		PaymentType: wompi.PaymentTypeProviders, TotalAmountInCents: total, TransactionCount: len(txs), SubmittedAt: time.Now()},
		mapping, time.Now()); err != nil {
		f.Fatal(err)
	}
	return res.PayoutID, batchID, txs
}

// produced sums payouts_tracker_transitions_total.
func produced(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "payouts_tracker_transitions_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// ambiguous reports whether some object of body repeats a key or holds
// two keys that differ only in case: the fuzz oracle's own check,
// independent of wompi's.
func ambiguous(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) || err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.object && top.key {
			k := strings.Map(fold, s)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// fold maps a rune to the smallest of its case-folding orbit.
func fold(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}
