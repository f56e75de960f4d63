package events

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

var decodeSentinels = []error{ErrUnknownFraming, ErrTruncated, ErrUnknownSchema, ErrIncompatibleSchema, ErrMalformed, ErrRegistryUnavailable, ErrSchemaNotYetFound}

func isSentinel(err error) bool {
	for _, s := range decodeSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func checkNoPII(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{piiName, piiLegalID, piiAccount, piiEmail, "req-0001-abc"} {
		if strings.Contains(err.Error(), s) {
			t.Fatalf("error text quotes payload %q: %v", s, err)
		}
	}
}

func TestDecodeBadInput(t *testing.T) {
	c := newSOECodec(t)
	good, err := c.AppendRequest(nil, fullRequest())
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	// Offset of paymentType: header, then requestId and originAccountId
	// (one-byte zigzag lengths).
	r := fullRequest()
	ptOff := 10 + 1 + len(r.RequestID) + 1 + len(r.OriginAccountID)

	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, ErrTruncated},
		{"empty", []byte{}, ErrTruncated},
		{"json", []byte(`{"requestId":"x"}`), ErrUnknownFraming},
		{"garbage", []byte("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5"), ErrUnknownFraming},
		{"soe magic wrong second byte", []byte{0xC3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9}, ErrUnknownFraming},
		{"soe magic only", []byte{0xC3, 0x01}, ErrTruncated},
		{"soe header only", good[:10], ErrTruncated},
		{"confluent magic only", []byte{0}, ErrTruncated},
		{"unknown fingerprint", mutate(func(b []byte) []byte { b[5] ^= 0xFF; return b }), ErrUnknownSchema},
		{"unknown schema id", []byte{0, 0, 0, 0x30, 0x39, 2, 'x'}, ErrUnknownSchema},
		{"unknown enum symbol", mutate(func(b []byte) []byte { b[ptOff] = 2 * 3; return b }), ErrMalformed},
		{"negative enum index", mutate(func(b []byte) []byte { b[ptOff] = 1; return b }), ErrMalformed},
		{"trailing bytes", append(bytes.Clone(good), 0), ErrMalformed},
		{"negative string length", mutate(func(b []byte) []byte { b[10] = 0x01; return b }), ErrMalformed},
		{"huge string length", append(bytes.Clone(good[:10]), 0xFE, 0xFF, 0xFF, 0xFF, 0x0F), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got payout.Request
			err := c.DecodeRequest(tc.in, &got)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			checkNoPII(t, err)
		})
	}

	// Every strict prefix past the header is a truncated record.
	for n := 10; n < len(good); n++ {
		var got payout.Request
		if err := c.DecodeRequest(good[:n], &got); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d of %d: %v, want ErrTruncated", n, len(good), err)
		}
	}
}

func TestDecodeWrongRecordType(t *testing.T) {
	c := newSOECodec(t)
	b, _ := c.AppendBatch(nil, fullBatch(2))
	var r payout.Request
	if err := c.DecodeRequest(b, &r); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("batch bytes as request: %v", err)
	}
}

func TestHugeArrayIsRefused(t *testing.T) {
	c := newSOECodec(t)
	b, _ := c.AppendBatch(nil, minimalBatch())
	// minimalBatch: batchId "b", originAccountId "", paymentType, schedule
	// (two nulls), then the transactions block count. Claim 2^40 items.
	off := 10 + 2 + 1 + 1 + 2
	if b[off] != 0 {
		t.Fatalf("layout changed: byte %d = %x", off, b[off])
	}
	huge := append(bytes.Clone(b[:off]), 0x80, 0x80, 0x80, 0x80, 0x80, 0x40)
	var batch payout.Batch
	if err := c.DecodeBatch(huge, &batch); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("huge array: %v", err)
	}
	// The most negative block count (hamba negates it) must not panic either.
	neg := append(bytes.Clone(b[:off]), 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01)
	if err := c.DecodeBatch(neg, &batch); !isSentinel(err) {
		t.Fatalf("min-int block count: %v", err)
	}
}
