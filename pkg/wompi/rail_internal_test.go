package wompi

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// codeConstants returns every Code* constant of errors.go, by value.
func codeConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				out[v] = n.Name
			}
		}
	}
	if len(out) < 9 {
		t.Fatalf("found only %d codes in errors.go: %v", len(out), out)
	}
	return out
}

// TestRailClassOfEveryCode builds each code's answer as the client does
// (httpError, with the HTTP status Wompi or the simulator gives it), for a
// read and for a create, and checks its class through rail.ClassOf, on the
// bare error, wrapped, and through the adapter's *rail.Error. Every Code*
// constant of errors.go must be in the table: a new code without a class
// fails here.
func TestRailClassOfEveryCode(t *testing.T) {
	type want struct {
		status    int
		get, post rail.Class
	}
	table := map[string]want{
		CodeInsufficientBalance: {400, rail.Deferred, rail.Deferred},
		CodeDailyLimit:          {400, rail.Deferred, rail.Deferred},
		CodeDailyBatchLimit:     {400, rail.Deferred, rail.Deferred},
		CodeIdempotencyReused:   {409, rail.AlreadyExists, rail.AlreadyExists},
		CodeServiceUnavailable:  {503, rail.Retryable, rail.OutcomeUnknown},
		CodeUnauthorized:        {401, rail.Unauthorized, rail.Unauthorized},
		CodeNotFound:            {404, rail.Unauthorized, rail.Unauthorized},
		CodeValidation:          {400, rail.Permanent, rail.Rejected},
		CodeTooManyRequests:     {429, rail.Retryable, rail.Retryable},
	}
	for code, name := range codeConstants(t) {
		w, ok := table[code]
		if !ok {
			t.Errorf("%s (%s) has no rail class in this table", name, code)
			continue
		}
		for _, m := range []struct {
			method string
			want   rail.Class
		}{{http.MethodGet, w.get}, {http.MethodPost, w.post}} {
			body := fmt.Sprintf(`{"status":%d,"code":%q,"message":"x","meta":{"trace_id":"t"}}`, w.status, code)
			we := httpError(call{method: m.method, path: "/payouts"}, w.status, []byte(body))
			checkClass(t, fmt.Sprintf("%s %s %d", m.method, code, w.status), we, m.want)
		}
	}
}

func checkClass(t *testing.T, name string, we *Error, want rail.Class) {
	t.Helper()
	if got := rail.ClassOf(we); got != want {
		t.Errorf("%s: rail.ClassOf = %s, want %s", name, got, want)
	}
	if got := rail.ClassOf(fmt.Errorf("dispatch: %w", we)); got != want {
		t.Errorf("%s wrapped: rail.ClassOf = %s, want %s", name, got, want)
	}
	re := railError("op", we)
	var rerr *rail.Error
	if !errors.As(re, &rerr) || rerr.Class != want || rail.ClassOf(re) != want {
		t.Errorf("%s through the adapter: %v, want %s", name, re, want)
	}
	if back, ok := AsError(re); !ok || back != we {
		t.Errorf("%s: the adapter's error does not unwrap to the *wompi.Error", name)
	}
}

// TestRailClassWithoutCode covers the answers that carry no code, and
// the failures with no answer at all.
func TestRailClassWithoutCode(t *testing.T) {
	cases := []struct {
		method string
		status int
		want   rail.Class
	}{
		{http.MethodGet, 500, rail.Retryable}, {http.MethodPost, 500, rail.OutcomeUnknown},
		{http.MethodGet, 502, rail.Retryable}, {http.MethodPost, 504, rail.OutcomeUnknown},
		{http.MethodGet, 429, rail.Retryable}, {http.MethodPost, 429, rail.Retryable},
		{http.MethodGet, 401, rail.Unauthorized}, {http.MethodPost, 403, rail.Unauthorized},
		{http.MethodGet, 403, rail.Unauthorized}, {http.MethodPost, 404, rail.Unauthorized},
		{http.MethodPost, 400, rail.Rejected}, {http.MethodPost, 422, rail.Rejected},
		{http.MethodGet, 400, rail.Permanent}, {http.MethodGet, 422, rail.Permanent},
		{http.MethodPost, 409, rail.Permanent}, {http.MethodPost, 415, rail.Permanent},
	}
	for _, tc := range cases {
		we := httpError(call{method: tc.method, path: "/payouts"}, tc.status, []byte("<html>oops</html>"))
		checkClass(t, fmt.Sprintf("%s %d", tc.method, tc.status), we, tc.want)
	}
	c := &Client{}
	for _, tc := range []struct {
		name   string
		method string
		err    error
		want   rail.Class
	}{
		{"POST reset", http.MethodPost, io.ErrUnexpectedEOF, rail.OutcomeUnknown},
		{"POST timeout", http.MethodPost, context.DeadlineExceeded, rail.OutcomeUnknown},
		{"POST cancelled", http.MethodPost, context.Canceled, rail.OutcomeUnknown},
		{"GET reset", http.MethodGet, io.ErrUnexpectedEOF, rail.Retryable},
		{"GET timeout", http.MethodGet, context.DeadlineExceeded, rail.Retryable},
	} {
		checkClass(t, tc.name, c.transportError(call{method: tc.method, path: "/payouts"}, tc.err), tc.want)
	}
	// An unreadable 2xx to a create: the batch may exist.
	_, err := decodeInto(call{method: http.MethodPost, path: "/payouts"}, []byte(`{"data":{"payoutId":5}}`), &CreatePayoutResult{})
	if we, ok := AsError(err); !ok {
		t.Fatalf("decode: %v", err)
	} else {
		checkClass(t, "POST unreadable 201", we, rail.OutcomeUnknown)
	}
	// A create that may have been applied outranks any code its answer
	// carries: a 5xx naming a limit is not a refusal to trust.
	for _, code := range []string{CodeDailyLimit, CodeIdempotencyReused, CodeValidation} {
		body := `{"code":"` + code + `"}`
		checkClass(t, "POST 502 "+code, httpError(call{method: http.MethodPost, path: "/payouts"}, 502, []byte(body)), rail.OutcomeUnknown)
	}
	// An error built by hand without the flag is still classed safely.
	checkClass(t, "POST no answer, no flag", &Error{Method: http.MethodPost, Path: "/payouts", Err: io.EOF}, rail.OutcomeUnknown)
	// Before anything is sent.
	if got := rail.ClassOf(railError("create", ErrInvalidIdempotencyKey)); got != rail.Permanent {
		t.Errorf("invalid key: %s, want permanent", got)
	}
}

func TestStatusMappingIsExhaustive(t *testing.T) {
	batches := map[BatchStatus]payout.BatchStatus{
		BatchPendingApproval: payout.BatchPendingApproval, BatchPending: payout.BatchPending,
		BatchNotApproved: payout.BatchNotApproved, BatchRejected: payout.BatchRejected,
		BatchPartialPayment: payout.BatchPartialPayment, BatchTotalPayment: payout.BatchTotalPayment,
		BatchAFEOnHold: payout.BatchAFEOnHold, BatchAFERejected: payout.BatchAFERejected,
		"SOMETHING_NEW": "",
	}
	if len(batches)-1 != len(payout.BatchStatuses) {
		t.Fatalf("%d batch statuses in the table, %d in the contract", len(batches)-1, len(payout.BatchStatuses))
	}
	for s, want := range batches {
		if got := BatchStatusOf(s); got != want {
			t.Errorf("batch %s maps to %q, want %q", s, got, want)
		}
	}
	items := map[TransactionStatus]payout.Status{
		TransactionPending: payout.StatusPending, TransactionProcessing: payout.StatusPending,
		TransactionApproved: payout.StatusApproved, TransactionCancelled: payout.StatusCancelled,
		TransactionFailed: payout.StatusFailed, TransactionRejected: payout.StatusFailed, "SOMETHING_NEW": "",
	}
	for s, want := range items {
		if got := ItemStatusOf(s); got != want {
			t.Errorf("transaction %s maps to %q, want %q", s, got, want)
		}
	}
}

func TestRejectedItems(t *testing.T) {
	items := []rail.BatchItem{{ID: "r0"}, {ID: "r1"}, {ID: "r2"}}
	cases := []struct {
		msgs []string
		want []string
	}{
		{[]string{"transactions[2].accountNumber must be 6-20 digits", "transactions[0].email is not valid", "transactions[2].name is required"}, []string{"r2", "r0"}},
		{[]string{"transactions[1].email is not valid", "accountId is not ACTIVE"}, nil}, // the batch itself: all
		{[]string{"transactions[7].email is not valid"}, nil},                            // out of range: all
		{nil, nil},
	}
	for _, tc := range cases {
		got := rejectedItems(tc.msgs, items)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: %v, want %v", tc.msgs, got, tc.want)
		}
	}
}

// A failure's code goes into the FAILED event's reasonCode: kept when it
// reads as a bank's code, bounded (an event past the status topic's
// max.message.bytes would never be written) and masked otherwise.
func TestFailureCodeIsBounded(t *testing.T) {
	if got := reasonOf(TransactionFailed, FailureReason{Code: "D07"}).Code; got != "D07" {
		t.Errorf("D07 became %q", got)
	}
	if got := reasonOf(TransactionFailed, FailureReason{Code: strings.Repeat("E", 1<<20)}).Code; len(got) > 64 {
		t.Errorf("a code of 1 MiB kept %d bytes", len(got))
	}
	if got := reasonOf(TransactionFailed, FailureReason{Code: "acct-4000000015"}).Code; strings.Contains(got, "4000000015") {
		t.Errorf("an account number quoted in the code stayed: %q", got)
	}
}
