package wompi

import "testing"

// pageSum leaves out the envelope's meta value, and nothing else.
func TestPageSumLeavesOutOnlyTheEnvelopesMeta(t *testing.T) {
	base := `{"status":200,"meta":{"trace_id":"a"},"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]}}`
	for _, c := range []struct {
		other string
		same  bool
	}{
		{`{"status":200,"meta":{"trace_id":"b","at":[1,{"x":"}"}]},"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]}}`, true},
		{`{"status":200,"meta":null,"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]}}`, true},
		{`{"status":200,"meta":{"trace_id":"a"},"data":{"page":1,"records":[{"id":"t1","status":"APPROVED"}]}}`, false},
		{`{"status":201,"meta":{"trace_id":"a"},"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]}}`, false},
		{`{"status":200,"meta":{"trace_id":"a"},"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]},"x":1}`, false},
		{`{"status":200,"Meta":{"trace_id":"a"},"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]}}`, false},
		{`{"status":200,"data":{"page":1,"records":[{"id":"t1","status":"PENDING"}]},"meta":{"trace_id":"a"}}`, false},
	} {
		if got := pageSum([]byte(c.other)) == pageSum([]byte(base)); got != c.same {
			t.Fatalf("%s: same sum %v, want %v", c.other, got, c.same)
		}
	}
	// A meta member inside the data is data.
	a, b := `{"data":{"meta":1,"records":[]}}`, `{"data":{"meta":2,"records":[]}}`
	if pageSum([]byte(a)) == pageSum([]byte(b)) {
		t.Fatal("a meta member inside data left out")
	}
	// An answer the scanner cannot read is summed whole.
	for _, pair := range [][2]string{
		{`[{"id":"t1"}]`, `[{"id":"t2"}]`},
		{`{"meta":{"trace_id":"a"},"data":`, `{"meta":{"trace_id":"b"},"data":`},
	} {
		if pageSum([]byte(pair[0])) == pageSum([]byte(pair[1])) {
			t.Fatalf("%s and %s summed alike", pair[0], pair[1])
		}
	}
}
