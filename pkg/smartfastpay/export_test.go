package smartfastpay

// ReadCreateAnswer is readCreateAnswer, for the simulator test in
// smartfastpay_test (sfptest imports this package).
func ReadCreateAnswer(raw []byte) (id, status string, ok bool) {
	a, ok := readCreateAnswer(raw)
	return a.id, a.status, ok
}
