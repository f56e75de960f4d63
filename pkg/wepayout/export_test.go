package wepayout

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
