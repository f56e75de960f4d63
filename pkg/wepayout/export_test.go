package wepayout

import "github.com/wompi-payouts/pipeline/pkg/plainjson"

// ReadEmptyPage reports whether readEmptyPage takes raw, for the simulator
// test in wepayout_test (weptest imports this package).
func ReadEmptyPage(raw []byte) bool {
	_, ok := readEmptyPage(raw)
	return ok
}

// ReadPaymentAnswer reports whether readPaymentAnswer takes raw.
func ReadPaymentAnswer(raw []byte) bool {
	_, ok := readPaymentAnswer(raw)
	return ok
}

// PlainPaymentFields reports whether every typed member (id, merchant_id,
// amount, status, created_at, updated_at) of the bare payment answer raw
// is taken by its plain reader rather than by its UnmarshalJSON method.
func PlainPaymentFields(raw []byte) bool {
	s := plainjson.Scanner{B: raw}
	s.Space()
	if !s.Byte('{') {
		return false
	}
	return s.Object(func(key []byte) bool {
		at := s.I
		if !s.Skip() {
			return false
		}
		v, ok := raw[at:s.I], true
		switch string(key) {
		case "id", "merchant_id":
			_, ok = plainID(v)
		case "amount":
			_, ok = plainCents(v)
		case "status":
			_, ok = plainStatus(v)
		case "created_at", "updated_at":
			_, ok = plainTime(v)
		}
		return ok
	}) && s.End()
}
