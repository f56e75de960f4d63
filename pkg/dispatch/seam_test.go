package dispatch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The dispatcher's decisions on a POST's error, as they were made on
// *wompi.Error before the dispatcher knew Wompi only through the rail
// seam (issue #19). TestPostVerdictsThroughTheSeam holds judgePost and
// the labels to them.

type beforeSeam struct {
	lookupFirst bool
	verdict     postVerdict
	reason      payout.Reason // postDeferred's
	blocked     string        // postRetry's blockedCode label
	unknown     bool          // the "outcome_unknown" log field
	class       string        // the metric label
	message     string        // masked, for events and DLQ headers
	code        string        // postRejected's code
}

func judgeBeforeSeam(err error) beforeSeam {
	we, ok := wompi.AsError(err)
	isRejection := ok && !we.OutcomeUnknown && (we.HTTPStatus == 400 || we.HTTPStatus == 422)
	postPermanent := false
	if ok && !we.OutcomeUnknown && we.HTTPStatus >= 400 && we.HTTPStatus < 500 {
		switch we.HTTPStatus {
		case 400, 422, 401, 403, 404, 408, 409, 425, 429:
		default:
			postPermanent = !wompi.IsDeferrable(err)
		}
	}
	b := beforeSeam{lookupFirst: wompi.IsDeferrable(err) || isRejection || postPermanent, unknown: wompi.IsOutcomeUnknown(err)}
	switch {
	case wompi.IsCode(err, wompi.CodeIdempotencyReused):
		b.verdict = postExists
	case wompi.IsDeferrable(err):
		b.verdict = postDeferred
		switch we.Code {
		case wompi.CodeInsufficientBalance:
			b.reason = payout.ReasonInsufficientBalance
		case wompi.CodeDailyBatchLimit:
			b.reason = payout.ReasonBatchBudget
		default:
			b.reason = payout.ReasonDailyLimit
		}
	case isRejection:
		b.verdict = postRejected
		b.code = we.Code
	case postPermanent:
		b.verdict = postFailed
	default:
		b.verdict = postRetry
		// A redirect too, since it is never followed (rail.NoRedirects).
		if ok && (we.HTTPStatus == 401 || we.HTTPStatus == 403 || we.HTTPStatus == 404 || we.HTTPStatus/100 == 3) {
			b.blocked = strconv.Itoa(we.HTTPStatus)
		}
	}
	switch {
	case !ok:
		b.class = "other"
	case we.HTTPStatus == 0 && we.Timeout():
		b.class = "timeout"
	case we.HTTPStatus == 0:
		b.class = "transport"
	case we.HTTPStatus == 409 || we.HTTPStatus == 429:
		b.class = strconv.Itoa(we.HTTPStatus)
	case we.HTTPStatus >= 500:
		b.class = "5xx"
	case we.HTTPStatus >= 400:
		b.class = "4xx"
	default:
		b.class = "other"
	}
	if ok {
		s := strings.Join(we.Messages, "; ")
		if s == "" {
			s = fmt.Sprintf("HTTP %d %s", we.HTTPStatus, we.Code)
		}
		s = emailLike.ReplaceAllString(s, "***@***")
		s = longDigits.ReplaceAllStringFunc(s, ops.Mask)
		if len(s) > 500 {
			s = s[:500]
		}
		b.message = strings.ToValidUTF8(s, "")
	}
	return b
}

func judgeThroughSeam(err error) beforeSeam {
	b := beforeSeam{unknown: classOf(err) == rail.OutcomeUnknown, class: class(err)}
	b.lookupFirst, b.verdict = judgePost(err)
	re, ok := railError(err)
	switch b.verdict {
	case postDeferred:
		b.reason = re.Reason
		if b.reason != payout.ReasonInsufficientBalance && b.reason != payout.ReasonBatchBudget {
			b.reason = payout.ReasonDailyLimit // wompiDeferred's default
		}
	case postRejected:
		b.code = re.Code
	case postRetry:
		b.blocked, _ = blockedCode(err)
	}
	if ok {
		b.message = re.Message
	}
	return b
}

// TestPostVerdictsThroughTheSeam answers POST /payouts with every status
// and code that matters, and with no answer at all, and checks that the
// dispatcher decides on Wompi's rail error exactly as it did on the
// *wompi.Error: the lookup first, the verdict, the deferral's reason, the
// rejection's code, the blocked label, the outcome_unknown log field, the
// metric's label and the masked message. The one difference, a 5xx that
// names EXC_022, is retried with the same key (the seam's class says the
// create may have been applied) rather than looked up at once; neither
// Wompi nor the simulator answers EXC_022 with anything but 409.
func TestPostVerdictsThroughTheSeam(t *testing.T) {
	t.Parallel()
	type answer struct {
		status int
		code   string
	}
	var cases []answer
	for _, st := range []int{201, 300, 400, 401, 403, 404, 405, 408, 409, 410, 415, 422, 425, 429, 500, 502, 503} {
		for _, code := range []string{"", wompi.CodeInsufficientBalance, wompi.CodeDailyLimit, wompi.CodeDailyBatchLimit,
			wompi.CodeIdempotencyReused, wompi.CodeValidation} {
			cases = append(cases, answer{st, code})
		}
	}
	cases = append(cases, answer{0, ""}) // no answer: the connection closes
	var current answer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := current
		if a.status == 0 {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		if a.status == 201 {
			fmt.Fprint(w, `{"data":{"transactions":1}}`) // no payoutId
			return
		}
		fmt.Fprintf(w, `{"status":%d,"code":%q,"message":["account 1234567890 of ana@example.com refused"],"meta":{"trace_id":"t"}}`,
			a.status, a.code)
	}))
	t.Cleanup(srv.Close)
	c, err := wompi.New(wompi.Config{BaseURL: srv.URL, APIKey: "k", PrincipalID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	r := wompi.NewRail(c, wompi.RailConfig{})
	ctx := context.Background()
	for _, a := range cases {
		current = a
		name := fmt.Sprintf("HTTP %d %q", a.status, a.code)
		res, werr := c.CreatePayout(ctx, "key-1", &wompi.CreatePayoutRequest{Reference: "b-1", AccountID: "acc", PaymentType: "PAYROLL",
			Transactions: []wompi.TransactionRequest{{LegalIDType: "CC", LegalID: "1000000000", BankID: "bank-1", AccountType: "AHORROS",
				AccountNumber: "4000000015", Name: "Ana", Email: "ana@example.com", Amount: 100_00, Reference: "r-1"}}})
		if werr == nil && res.PayoutID == "" {
			// As post() built it before the seam.
			werr = &wompi.Error{Method: http.MethodPost, Path: "/payouts", HTTPStatus: http.StatusCreated,
				Messages: []string{"answer without payoutId"}, OutcomeUnknown: true}
		}
		b, rerr := r.CreateBatch(ctx, "key-1", rail.BatchRequest{Reference: "b-1", OriginAccountID: "acc", PaymentType: "PAYROLL",
			Items: []rail.BatchItem{{ID: "r-1", AmountInCents: 100_00, ProviderBankID: "bank-1", Payee: rail.Payee{Name: "Ana",
				Email: "ana@example.com", LegalIDType: "CC", LegalID: "1000000000", AccountType: "AHORROS", AccountNumber: "4000000015"}}}})
		if werr == nil || rerr == nil {
			t.Fatalf("%s: want both to fail: %v, %+v %v", name, werr, b, rerr)
		}
		want, got := judgeBeforeSeam(werr), judgeThroughSeam(rerr)
		if a.status == 201 {
			// The message of an answer without payoutId is only logged.
			want.message, got.message = "", ""
		}
		if a.status >= 500 && a.code == wompi.CodeIdempotencyReused {
			if want.verdict != postExists || got.verdict != postRetry || !got.unknown || got.lookupFirst {
				t.Errorf("%s: before %+v, through the seam %+v: want EXC_022 looked up before, retried now", name, want, got)
			}
			continue
		}
		if want != got {
			t.Errorf("%s:\n before the seam  %+v\n through the seam %+v", name, want, got)
		}
	}
}
