package events

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// TestFastStatusChangeMatchesHamba: the hand-written encoder writes exactly
// hamba's bytes for every status, source and optional field, and what it
// writes decodes back to the same record.
func TestFastStatusChangeMatchesHamba(t *testing.T) {
	c, err := NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }
	at := time.UnixMilli(1_763_700_000_123).UTC()
	var cases []payout.StatusChange
	for i, st := range payout.Statuses {
		for j, src := range []payout.Source{payout.SourceIngest, payout.SourceDispatcher, payout.SourceWebhook, payout.SourcePoll} {
			sc := payout.StatusChange{EventID: "e", RequestID: "r-ñ", Status: st, Source: src, AmountInCents: int64(i*1000 - 3), OriginAccountID: "acc", OccurredAt: at}
			if (i+j)%2 == 0 {
				prev := payout.Statuses[(i+1)%len(payout.Statuses)]
				sc.BatchID, sc.PayoutID, sc.TransactionID = str("b-1"), str(""), str("tx")
				sc.PreviousStatus, sc.ReasonCode, sc.ReasonMessage = &prev, str("D07"), str("Account number does not exist")
				sc.AmountInCents = -1 << 62
			}
			if j%2 == 1 {
				sc.Rail = str([]string{"wompi", "", "smartfastpay", "wepayout-ñ"}[(i+j)%4])
			}
			cases = append(cases, sc)
		}
	}
	rc := &c.recs[RecordStatusChange]
	for i, sc := range cases {
		fast, err := c.AppendStatusChange(nil, &sc)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := c.encode(nil, rc, &sc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, slow) {
			t.Fatalf("case %d: fast %x\nhamba %x", i, fast, slow)
		}
		var back payout.StatusChange
		if err := c.DecodeStatusChange(fast, &back); err != nil || !reflect.DeepEqual(back, sc) {
			t.Fatalf("case %d: round trip %+v %v", i, back, err)
		}
	}
	bad := payout.StatusChange{Status: "PAID", Source: payout.SourceIngest}
	if _, err := c.AppendStatusChange(nil, &bad); err == nil {
		t.Fatal("an unknown status was encoded")
	}
}

func BenchmarkEncodeStatusChange(b *testing.B) {
	c, err := NewCodec(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	batch := "b-0123456789abcdef0123456789abcdef01234567"
	sc := payout.StatusChange{EventID: "0123456789abcdef0123456789abcdef", RequestID: "req-000123", BatchID: &batch,
		Status: payout.StatusBatched, AmountInCents: 1_000_000, OriginAccountID: "acc-1", OccurredAt: time.Now(), Source: payout.SourceIngest}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = c.AppendStatusChange(buf[:0], &sc)
	}
}

// A status event encoded into a new buffer (as the dispatcher and the
// tracker encode each event) costs one allocation of about its size, not
// one per doubling, whatever optional fields it carries.
func TestAppendStatusChangeAllocatesOnce(t *testing.T) {
	c, err := NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	batch, pid, tx, code, rail := "b-0123456789abcdef0123456789abcdef01234567", "8707a01d-0000-4000-8000-000000000001",
		"8707a01d-0000-4000-8000-000000000002", "R03", "wompi"
	msg := strings.Repeat("cuenta no existe ", 12)
	prev := payout.StatusPending
	for _, sc := range []payout.StatusChange{
		{EventID: "0123456789abcdef0123456789abcdef", RequestID: "req-000123", Status: payout.StatusBatched,
			AmountInCents: 1_000_000, OriginAccountID: "acc-1", OccurredAt: time.Now(), Source: payout.SourceIngest},
		{EventID: "0123456789abcdef0123456789abcdef", RequestID: "req-000123", BatchID: &batch, PayoutID: &pid,
			TransactionID: &tx, Status: payout.StatusFailed, PreviousStatus: &prev, ReasonCode: &code, ReasonMessage: &msg,
			AmountInCents: 1_000_000, OriginAccountID: "acc-1", OccurredAt: time.Now(), Source: payout.SourcePoll, Rail: &rail},
	} {
		if n := testing.AllocsPerRun(100, func() { _, _ = c.AppendStatusChange(nil, &sc) }); n != 1 {
			t.Errorf("%s event: %v allocations, want 1", sc.Status, n)
		}
	}
}

// slowStatusDecode decodes body with hamba, as the codec does for a writer
// schema other than the current one.
func slowStatusDecode(c *Codec, body []byte) (payout.StatusChange, error) {
	rc := &c.recs[RecordStatusChange]
	var s payout.StatusChange
	err := c.decodeSimple(RecordStatusChange, append(append([]byte{}, rc.header...), body...), &s, func() { s = payout.StatusChange{} })
	return s, err
}

func sampleStatusBodies(t testing.TB, c *Codec) [][]byte {
	str := func(s string) *string { return &s }
	prev := payout.StatusSubmitted
	var out [][]byte
	for _, sc := range []payout.StatusChange{
		{EventID: "e", RequestID: "r", Status: payout.StatusBatched, Source: payout.SourceIngest, OriginAccountID: "a",
			OccurredAt: time.UnixMilli(1_763_700_000_123).UTC()},
		{EventID: "e2", RequestID: "r-ñ", BatchID: str("b"), PayoutID: str(""), TransactionID: str("tx"), Status: payout.StatusFailed,
			PreviousStatus: &prev, ReasonCode: str("D07"), ReasonMessage: str("no existe"), AmountInCents: -1 << 62,
			OriginAccountID: "acc", OccurredAt: time.UnixMilli(-5).UTC(), Source: payout.SourcePoll, Rail: str("wompi")},
	} {
		b, err := c.AppendStatusChange(nil, &sc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b[len(c.recs[RecordStatusChange].header):])
	}
	return out
}

// FuzzFastStatus holds the fast status decoder to hamba's on arbitrary
// bodies: both accept with the same result, or both refuse.
func FuzzFastStatus(f *testing.F) {
	c, err := NewCodec(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range sampleStatusBodies(f, c) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast payout.StatusChange
		ferr := decodeStatusChangeFast(body, &fast)
		slow, serr := slowStatusDecode(c, body)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("fast err %v, hamba err %v", ferr, serr)
		}
		if ferr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast %+v\nhamba %+v", fast, slow)
		}
	})
}

// TestFastStatusDecode: DecodeStatusChange takes the fast path for the
// current schema, and refuses what hamba refuses: a truncated body,
// trailing bytes, an unknown enum symbol or union branch.
func TestFastStatusDecode(t *testing.T) {
	c, err := NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(RecordStatusChange) != 0xe51d66eb2835c663 {
		t.Fatal("PayoutStatusChanged changed: check decodeStatusChangeFast and appendStatusChangeFast against it, then re-pin")
	}
	header := c.recs[RecordStatusChange].header
	for i, body := range sampleStatusBodies(t, c) {
		want, err := slowStatusDecode(c, body)
		if err != nil {
			t.Fatal(err)
		}
		var got payout.StatusChange
		if err := c.DecodeStatusChange(append(append([]byte{}, header...), body...), &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("sample %d: %+v %v, want %+v", i, got, err, want)
		}
		if n := testing.AllocsPerRun(50, func() { _ = c.DecodeStatusChange(append(header[:len(header):len(header)], body...), &got) }); n > 4 {
			t.Errorf("sample %d: %v allocations per decode", i, n)
		}
		bad := [][]byte{body[:len(body)-1], append(append([]byte{}, body...), 0)}
		for j, b := range bad {
			if _, serr := slowStatusDecode(c, b); serr == nil {
				t.Fatalf("sample %d, bad %d: hamba accepted it", i, j)
			}
			if err := c.DecodeStatusChange(append(append([]byte{}, header...), b...), &got); err == nil || got != (payout.StatusChange{}) {
				t.Fatalf("sample %d, bad %d: accepted (%+v)", i, j, got)
			}
		}
	}
}

// BenchmarkDecodeStatusChange: the fast path (the current schema) against
// hamba's decoder on the same bytes.
func BenchmarkDecodeStatusChange(b *testing.B) {
	c, err := NewCodec(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	body := sampleStatusBodies(b, c)[1]
	v := append(append([]byte{}, c.recs[RecordStatusChange].header...), body...)
	var s payout.StatusChange
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.DecodeStatusChange(v, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.decodeSimple(RecordStatusChange, v, &s, func() {}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
