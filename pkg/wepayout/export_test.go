package wepayout

// ReadEmptyPage reports whether readEmptyPage takes raw, for the simulator
// test in wepayout_test (weptest imports this package).
func ReadEmptyPage(raw []byte) bool {
	_, ok := readEmptyPage(raw)
	return ok
}
