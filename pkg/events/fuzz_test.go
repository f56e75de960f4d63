package events

import (
	"context"
	"reflect"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// FuzzDecode feeds arbitrary bytes to every Decode method, through a codec
// that knows both framings (an in-memory registry, so no HTTP). Decoding
// must never panic, must fail only with one of the package's sentinels, and
// whatever it accepts must re-encode and decode to the same value.
func FuzzDecode(f *testing.F) {
	reg := newMemRegistry()
	c, err := NewCodec(context.Background(), WithRegistryClient(reg))
	if err != nil {
		f.Fatal(err)
	}
	soe, err := NewCodec(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	for _, enc := range []*Codec{c, soe} {
		for _, tc := range allCases() {
			b, err := tc.encode(enc, nil)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Values written with the previous schemas, read through resolution.
	for _, pc := range previousCases() {
		f.Add(soeFrame(f, previousSchema(f, pc.rec), pc.value))
	}
	f.Add([]byte{})
	f.Add([]byte{0xC3, 0x01})
	f.Add([]byte{0, 0, 0, 0, 1})

	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(name string, err error, again func() (any, any, error)) {
			if err != nil {
				if !isSentinel(err) {
					t.Fatalf("%s: error without a sentinel: %v", name, err)
				}
				return
			}
			first, second, err := again()
			if err != nil {
				t.Fatalf("%s: accepted value does not round-trip: %v", name, err)
			}
			if !reflect.DeepEqual(first, second) {
				t.Fatalf("%s: round trip changed the value\n%+v\n%+v", name, first, second)
			}
		}
		var r payout.Request
		check("request", c.DecodeRequest(b, &r), func() (any, any, error) {
			var r2 payout.Request
			out, err := c.AppendRequest(nil, &r)
			if err == nil {
				err = c.DecodeRequest(out, &r2)
			}
			return &r, &r2, err
		})
		var bt payout.Batch
		check("batch", c.DecodeBatch(b, &bt), func() (any, any, error) {
			var b2 payout.Batch
			out, err := c.AppendBatch(nil, &bt)
			if err == nil {
				err = c.DecodeBatch(out, &b2)
			}
			if bt.Transactions == nil && b2.Transactions != nil && len(b2.Transactions) == 0 {
				b2.Transactions = nil
			}
			return &bt, &b2, err
		})
		var sc payout.StatusChange
		check("status", c.DecodeStatusChange(b, &sc), func() (any, any, error) {
			var s2 payout.StatusChange
			out, err := c.AppendStatusChange(nil, &sc)
			if err == nil {
				err = c.DecodeStatusChange(out, &s2)
			}
			return &sc, &s2, err
		})
		var bs payout.BatchStatusChange
		check("batch status", c.DecodeBatchStatusChange(b, &bs), func() (any, any, error) {
			var s2 payout.BatchStatusChange
			out, err := c.AppendBatchStatusChange(nil, &bs)
			if err == nil {
				err = c.DecodeBatchStatusChange(out, &s2)
			}
			return &bs, &s2, err
		})
	})
}
