package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// TestBatchSkippedBlockSize: a writer schema with a field the reader lacks
// (here an array before transactions) is skipped by hamba by its blocks'
// byte sizes, while checkBlocks walks the items. A block size that
// disagrees with its items made hamba read the transactions from bytes
// checkBlocks never walked, with a block count of -2^63 among them: the
// negative-length batch checkBlocks is there to prevent.
func TestBatchSkippedBlockSize(t *testing.T) {
	var sch map[string]any
	if err := json.Unmarshal([]byte(Schema(RecordBatch)), &sch); err != nil {
		t.Fatal(err)
	}
	fields := sch["fields"].([]any)
	var out []any
	for _, f := range fields {
		if f.(map[string]any)["name"] == "transactions" {
			out = append(out, map[string]any{"name": "tags", "type": map[string]any{"type": "array", "items": "long"}})
		}
		out = append(out, f)
	}
	sch["fields"] = out
	js, _ := json.Marshal(sch)
	w, err := avro.Parse(string(js))
	if err != nil {
		t.Fatal(err)
	}
	c := newSOECodec(t, WithWriterSchemas(string(js)))

	var body []byte
	body = appendString(body, "b")
	body = appendString(body, "a")
	body = append(body, 0, 0, 0) // PAYROLL, no schedule
	// tags: one block of one item, its size 9 (the item is 1 byte).
	body = append(body, 1, 18, 0, 0)
	body = append(body, 0, 0, 0, 0, 0, 0, 0) // what checkBlocks reads: no transactions ... no rail
	// What hamba reads after skipping 9 bytes.
	body = appendLong(body, -1<<63)
	body = append(body, 0, 0, 0, 0, 0, 0, 0, 0)
	fp, err := w.FingerprintUsing(avro.CRC64AvroLE)
	if err != nil {
		t.Fatal(err)
	}
	v := append([]byte{soeMagic0, soeMagic1}, fp...)
	v = append(v, body...)
	got := payout.Batch{BatchID: "stale"}
	err = c.DecodeBatch(v, &got)
	if n := len(got.Transactions); negativeLen(n) || !errors.Is(err, ErrMalformed) || !reflect.DeepEqual(got, payout.Batch{}) {
		t.Fatalf("%v (%d transactions)", err, n)
	}
}
