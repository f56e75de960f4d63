package wompi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// envelope is Wompi's answer wrapper [sdk]. Status may be a number or a
// string, message a string or a list.
type envelope struct {
	Status  json.RawMessage `json:"status"`
	Code    string          `json:"code"`
	Message json.RawMessage `json:"message"`
	Meta    struct {
		TraceID string `json:"trace_id"`
	} `json:"meta"`
	// Data is nil when the key is absent (a bare payload), "null" when null.
	Data json.RawMessage `json:"data"`
}

func (e *envelope) messages() []string {
	m := bytes.TrimSpace(e.Message)
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	var one string
	if json.Unmarshal(m, &one) == nil {
		if one == "" {
			return nil
		}
		return []string{one}
	}
	var many []string
	if json.Unmarshal(m, &many) == nil {
		return many
	}
	return []string{string(m)}
}

// unwrap returns the payload of body: envelope.data when body is an object
// with a "data" key, else body itself (a bare payload) [sdk: the API is
// inconsistent, so every endpoint accepts both].
func unwrap(body []byte) (payload []byte, env envelope) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return t, env
	}
	if err := json.Unmarshal(t, &env); err != nil || env.Data == nil {
		return t, envelope{}
	}
	return env.Data, env
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

type call struct {
	method, path string // path is relative to the base, already escaped
	query        url.Values
	body         []byte
	contentType  string
	idemKey      string
	// answered, when set, reads a failed GET's body before any retry: if
	// it returns true the failure already carries the answer (a /health
	// 503 with its payload) and is not repeated.
	answered func(raw []byte) bool
	// sent, when set, lists the personal values the call carries (a
	// batch's payees, a listing's filter), which httpError masks in an
	// error answer (see sentValues). It is called only for an error
	// answer, so an accepted call pays nothing for it.
	sent func() []string
}

// do performs cl and returns the raw answer body of a 2xx, or an *Error. A
// GET that fails retryably is repeated up to c.readRetries times (see
// Config.ReadRetries).
func (c *Client) do(ctx context.Context, cl call) ([]byte, int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	raw, status, err := c.once(ctx, cl)
	if cl.method != http.MethodGet {
		return raw, status, err
	}
	wait := c.readBackoff
	for range c.readRetries {
		we, ok := AsError(err)
		if !ok || !we.Retryable() || we.Timeout() || (cl.answered != nil && cl.answered(raw)) {
			break
		}
		// Full jitter: replicas that failed together do not retry together.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(wait))) + wait/2)
		select {
		case <-ctx.Done():
			t.Stop()
			return raw, status, err
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
		raw, status, err = c.once(ctx, cl)
	}
	return raw, status, err
}

// once performs cl a single time.
func (c *Client) once(ctx context.Context, cl call) ([]byte, int, error) {
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, body)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s %s", ErrInvalidRequest, cl.method, cl.path)
	}
	req.Header.Set(HeaderAPIKey, c.sec.apiKey)
	req.Header.Set(HeaderPrincipalID, c.sec.principalID)
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json")
	if cl.contentType != "" {
		req.Header.Set("Content-Type", cl.contentType)
	}
	if cl.idemKey != "" {
		req.Header.Set(HeaderIdempotencyKey, cl.idemKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, c.transportError(cl, err)
	}
	defer resp.Body.Close()
	raw, err := rail.ReadBody(resp, MaxResponseBytes)
	if err != nil {
		// The status line arrived but the body did not: for a POST the
		// batch may exist.
		return nil, 0, c.transportError(cl, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return raw, resp.StatusCode, nil
	}
	return raw, resp.StatusCode, httpError(cl, resp.StatusCode, raw)
}

func (c *Client) transportError(cl call, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may carry PII in its query
	}
	return &Error{Method: cl.method, Path: cl.path, Err: err, OutcomeUnknown: cl.method == http.MethodPost}
}

// httpError builds the *Error of a non-2xx answer. Wompi's code and
// messages may quote the payee's data back (a validation 400): they are
// masked here, where they enter, so that no text of the *Error carries
// it: first the values the call sent (cl.sent, see sentValues), then
// whatever looks like an account number, a legal id or an email
// (maskText). Each message is bounded, and none is dropped: rejectedItems
// reads them all, by the transaction index they start with, which stays.
func httpError(cl call, status int, raw []byte) *Error {
	e := &Error{Method: cl.method, Path: cl.path, HTTPStatus: status}
	t := bytes.TrimSpace(raw)
	var sent *sentValues
	if cl.sent != nil && len(t) > 0 {
		sent = newSentValues(cl.sent())
	}
	var env envelope
	if len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &env) == nil {
		e.Code = sent.maskClip(env.Code, 64)
		e.Messages = env.messages()
		e.TraceID = clipText(env.Meta.TraceID, 128)
		for i, m := range e.Messages {
			e.Messages[i] = sent.maskClip(m, 512)
		}
	} else if len(t) > 0 {
		e.Messages = []string{sent.maskClip(string(t), 256)}
	}
	if e.Code == "" && status == http.StatusServiceUnavailable {
		e.Code = CodeServiceUnavailable
	}
	e.OutcomeUnknown = cl.method == http.MethodPost && status >= 500
	return e
}

func decodeInto(cl call, raw []byte, out any) (envelope, error) {
	payload, env := unwrap(raw)
	if out == nil || len(payload) == 0 || string(payload) == "null" {
		return env, nil
	}
	if err := json.Unmarshal(payload, out); err != nil {
		return env, &Error{Method: cl.method, Path: cl.path, Err: fmt.Errorf("decode answer: %w", err),
			OutcomeUnknown: cl.method == http.MethodPost}
	}
	return env, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	cl := call{method: http.MethodGet, path: path, query: q, sent: sentInQuery(q)}
	raw, _, err := c.do(ctx, cl)
	if err != nil {
		return err
	}
	_, err = decodeInto(cl, raw, out)
	return err
}

// plainPage is Page without its UnmarshalJSON, for a one-pass decode.
type plainPage[T any] Page[T]

// getPage fetches one page. The usual answer, a page wrapped in the
// envelope, is decoded in a single pass; anything else (a bare page, a bare
// array, an envelope whose data is an array) goes through decodeInto,
// which accepts every shape. Listing is the dispatcher's heaviest call
// (every transaction of every batch), so the pass saved counts.
func getPage[T any](ctx context.Context, c *Client, path string, q url.Values) (Page[T], error) {
	cl := call{method: http.MethodGet, path: path, query: q, sent: sentInQuery(q)}
	raw, _, err := c.do(ctx, cl)
	if err != nil {
		return Page[T]{}, err
	}
	var fast Page[T]
	if refs, ok := any(&fast).(*Page[TransactionRef]); ok {
		if page, ok := decodeRefPage(raw); ok {
			*refs = page
			return fast, nil
		}
	}
	if items, ok := any(&fast).(*Page[transactionItem]); ok {
		if page, ok := decodeItemPage(raw); ok {
			*items = page
			return fast, nil
		}
	}
	var wrapped struct {
		Data *plainPage[T] `json:"data"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && wrapped.Data != nil {
		return Page[T](*wrapped.Data), nil
	}
	var p Page[T]
	_, err = decodeInto(cl, raw, &p)
	return p, err
}

func seg(s string) string { return url.PathEscape(s) }

func required(what, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidRequest, what)
	}
	return nil
}

// Banks returns GET /banks: the banks and their bankId UUIDs.
func (c *Client) Banks(ctx context.Context) ([]Bank, error) {
	var p Page[Bank]
	if err := c.getJSON(ctx, "/banks", nil, &p); err != nil {
		return nil, err
	}
	return p.Records, nil
}

// Accounts returns GET /accounts: the origin accounts and their balances.
func (c *Client) Accounts(ctx context.Context, f AccountsFilter) ([]Account, error) {
	q := url.Values{}
	if len(f.BankCodes) > 0 {
		q.Set("bankCodes", strings.Join(f.BankCodes, ","))
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	var out []Account
	for a, err := range paginate[Account](ctx, c, "/accounts", q, 0, 0, false) {
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Limits returns GET /limits for today.
func (c *Client) Limits(ctx context.Context) (*Limits, error) {
	var l Limits
	if err := c.getJSON(ctx, "/limits", nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// LimitsOn returns GET /limits?date=YYYY-MM-DD for the Bogota day of day
// [ours: only the simulator understands date; the real API answers today].
func (c *Client) LimitsOn(ctx context.Context, day time.Time) (*Limits, error) {
	var l Limits
	if err := c.getJSON(ctx, "/limits", url.Values{"date": {BogotaDay(day)}}, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// CreatePayout creates a batch with POST /payouts. key is the
// idempotency-key, required and validated locally (ValidIdempotencyKey).
//
// On failure the *Error says what to do: Retryable (5xx, 429, timeouts,
// connection failures): retry with the SAME key; OutcomeUnknown: the batch
// may exist; code EXC_022: it exists, find it with Payouts(Reference);
// IsDeferrable: try later; other 4xx: the batch is invalid as sent.
func (c *Client) CreatePayout(ctx context.Context, key string, r *CreatePayoutRequest) (*CreatePayoutResult, error) {
	if !ValidIdempotencyKey(key) {
		return nil, ErrInvalidIdempotencyKey
	}
	if r == nil {
		return nil, fmt.Errorf("%w: nil CreatePayoutRequest", ErrInvalidRequest)
	}
	bp := bufPool.Get().(*[]byte)
	body := AppendCreatePayoutBody((*bp)[:0], r)
	defer func() {
		if cap(body) <= 8<<20 {
			*bp = body[:0]
			bufPool.Put(bp)
		}
	}()
	return c.postCreate(ctx, call{method: http.MethodPost, path: "/payouts", body: body,
		contentType: "application/json", idemKey: key, sent: r.payeeValues})
}

func (c *Client) postCreate(ctx context.Context, cl call) (*CreatePayoutResult, error) {
	raw, _, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var res CreatePayoutResult
	env, err := decodeInto(cl, raw, &res)
	if err != nil {
		return nil, err
	}
	res.TraceID = env.Meta.TraceID
	return &res, nil
}

// pageSizeOr returns the filter's limit or the client's page size.
func (c *Client) pageSizeOr(limit int) int {
	if limit > 0 {
		return limit
	}
	return c.pageSize
}

// paginate yields every record of every page from startPage on. A page
// that fails yields the error once and stops. It stops after the last page
// (the most pages any page announced), or at the first short or empty page
// when no page announced pages. Records are never deleted, so a page
// announcing fewer records or pages than an earlier page is from a server
// copy behind: Wompi does not publish its order, and in a listing newest
// first that copy's records sit earlier than on the pages read, the one
// it moved onto a page already read on no page the walk reads. Such a
// page, and an empty page where earlier pages, or its own total, announced
// records, yield ErrInconsistentPage (retryable), never a listing that
// looks complete. A listing filtered by status shrinks as records change
// status while it is walked: it stops at its own page's count, or at an
// empty page (a poll by status, which the next poll completes). A frozen
// listing is one walked while nothing adds records to it (a recovery's,
// made while no dispatcher posts): a page announcing more records or
// pages than an earlier page shows that the earlier one came from a copy
// behind, whose records sit earlier than on the later pages (newest
// first), the newest on no page the walk reads: ErrInconsistentPage too.
func paginate[T any](ctx context.Context, c *Client, path string, q url.Values, limit, startPage int, frozen bool) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		page := max(startPage, 1)
		var ext rail.Extent // what the pages read announced
		shrinks := q.Get("status") != ""
		for range 1_000_000 {
			qq := url.Values{}
			for k, v := range q {
				qq[k] = v
			}
			if limit > 0 {
				qq.Set("limit", strconv.Itoa(limit))
			}
			qq.Set("page", strconv.Itoa(page))
			p, err := getPage[T](ctx, c, path, qq)
			if err == nil && !shrinks {
				if lag := ext.Check(p.Total, p.Pages, frozen); lag != rail.InStep {
					err = &Error{Method: http.MethodGet, Path: path,
						Err: fmt.Errorf("%w: page %d announces %d records, %d pages; earlier pages %d, %d: %v",
							ErrInconsistentPage, page, p.Total, p.Pages, ext.Records, ext.Pages, lag)}
				}
			}
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, r := range p.Records {
				if !yield(r, nil) {
					return
				}
			}
			ext.Add(p.Total, p.Pages)
			pages := ext.Pages // the most pages any page announced
			if shrinks {
				pages = p.Pages
			}
			per := limit
			if per <= 0 {
				per = p.Limit
			}
			switch {
			case len(p.Records) == 0:
				if !shrinks && (page < pages || (page > 1 && page <= pages) || (per > 0 && p.Total > (page-1)*per)) {
					var zero T
					yield(zero, &Error{Method: http.MethodGet, Path: path,
						Err: fmt.Errorf("%w: page %d is empty, the listing announcing %d pages, %d records", ErrInconsistentPage, page, pages, p.Total)})
				}
				return
			case pages > 0 && page >= pages:
				return
			case pages == 0 && (limit <= 0 || len(p.Records) < limit):
				return
			}
			page++
		}
	}
}

// Payouts iterates GET /payouts through every page.
func (c *Client) Payouts(ctx context.Context, f PayoutsFilter) iter.Seq2[Payout, error] {
	q := url.Values{}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, s := range f.Statuses {
			ss[i] = string(s)
		}
		q.Set("status", strings.Join(ss, ","))
	}
	setIf(q, "fromDate", f.FromDate)
	setIf(q, "toDate", f.ToDate)
	setIf(q, "reference", f.Reference)
	setIf(q, "id", f.ID)
	return paginate[Payout](ctx, c, "/payouts", q, c.pageSizeOr(f.Limit), f.Page, f.Frozen)
}

// PayoutsPage returns one page of GET /payouts (f.Page, default 1).
func (c *Client) PayoutsPage(ctx context.Context, f PayoutsFilter) (*Page[Payout], error) {
	q := url.Values{}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, s := range f.Statuses {
			ss[i] = string(s)
		}
		q.Set("status", strings.Join(ss, ","))
	}
	setIf(q, "fromDate", f.FromDate)
	setIf(q, "toDate", f.ToDate)
	setIf(q, "reference", f.Reference)
	setIf(q, "id", f.ID)
	q.Set("limit", strconv.Itoa(c.pageSizeOr(f.Limit)))
	q.Set("page", strconv.Itoa(max(f.Page, 1)))
	var p Page[Payout]
	if err := c.getJSON(ctx, "/payouts", q, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// FindPayoutsByReference collects every batch with the given batch
// reference: the reconciliation query after a lost answer or EXC_022.
func (c *Client) FindPayoutsByReference(ctx context.Context, reference string) ([]Payout, error) {
	if err := required("reference", reference); err != nil {
		return nil, err
	}
	var out []Payout
	for p, err := range c.Payouts(ctx, PayoutsFilter{Reference: reference}) {
		if err != nil {
			return nil, err
		}
		if p.Reference == reference {
			out = append(out, p)
		}
	}
	return out, nil
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// Payout returns GET /payouts/{id}.
func (c *Client) Payout(ctx context.Context, id string) (*Payout, error) {
	if err := required("payout id", id); err != nil {
		return nil, err
	}
	var p Payout
	if err := c.getJSON(ctx, "/payouts/"+seg(id), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PayoutTransactions iterates GET /payouts/{id}/transactions through every
// page.
func (c *Client) PayoutTransactions(ctx context.Context, payoutID string, f TransactionsFilter) iter.Seq2[Transaction, error] {
	return payoutTransactions[Transaction](ctx, c, payoutID, f)
}

// TransactionRef is the part of a transaction that maps it back to our
// request: its id, its reference (our requestId) and its status.
type TransactionRef struct {
	ID        string            `json:"id"`
	Reference string            `json:"reference"`
	Status    TransactionStatus `json:"status"`
}

// PayoutTransactionRefs is PayoutTransactions decoding only id, reference
// and status: the dispatcher maps every transaction of every batch it
// posts, and skipping the payee data makes that several times cheaper (and
// keeps personal data out of its memory).
func (c *Client) PayoutTransactionRefs(ctx context.Context, payoutID string, f TransactionsFilter) iter.Seq2[TransactionRef, error] {
	return payoutTransactions[TransactionRef](ctx, c, payoutID, f)
}

// transactionItem is a transaction as Rail.Items reads it: every field of
// Transaction but the payee's data, which the pipeline does not need after
// the POST (and keeps out of its memory), and which is most of the bytes.
type transactionItem struct {
	TransactionRef               // id, reference, status
	AmountInCents  int64         `json:"amountInCents"`
	FailureReason  FailureReason `json:"failureReason"`
	AppliedAt      Time          `json:"appliedAt"`
	CreatedAt      Time          `json:"createdAt"`
}

// item is t without the payee's data.
func (t *Transaction) item() transactionItem {
	return transactionItem{TransactionRef: TransactionRef{ID: t.ID, Reference: t.Reference, Status: t.Status}, AmountInCents: t.AmountInCents,
		FailureReason: t.FailureReason, AppliedAt: t.AppliedAt, CreatedAt: t.CreatedAt}
}

func payoutTransactions[T any](ctx context.Context, c *Client, payoutID string, f TransactionsFilter) iter.Seq2[T, error] {
	if err := required("payout id", payoutID); err != nil {
		return errSeq[T](err)
	}
	q := url.Values{}
	setIf(q, "status", string(f.Status))
	setIf(q, "reference", f.Reference)
	setIf(q, "accountNumber", f.AccountNumber)
	setIf(q, "payeeName", f.PayeeName)
	return paginate[T](ctx, c, "/payouts/"+seg(payoutID)+"/transactions", q, c.pageSizeOr(f.Limit), f.Page, false)
}

// PayoutTransaction returns GET /payouts/{id}/transactions/{txId}.
func (c *Client) PayoutTransaction(ctx context.Context, payoutID, transactionID string) (*Transaction, error) {
	if err := required("payout id", payoutID); err != nil {
		return nil, err
	}
	if err := required("transaction id", transactionID); err != nil {
		return nil, err
	}
	var t Transaction
	if err := c.getJSON(ctx, "/payouts/"+seg(payoutID)+"/transactions/"+seg(transactionID), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// TransactionsByReference iterates GET /transactions/{reference}: the
// transactions of the batch(es) with this BATCH reference [sdk].
func (c *Client) TransactionsByReference(ctx context.Context, batchReference string, f ReferenceFilter) iter.Seq2[Transaction, error] {
	if err := required("reference", batchReference); err != nil {
		return errSeq[Transaction](err)
	}
	q := url.Values{}
	setIf(q, "status", string(f.Status))
	return paginate[Transaction](ctx, c, "/transactions/"+seg(batchReference), q, c.pageSizeOr(f.Limit), f.Page, false)
}

// Reports iterates GET /reports/payouts.
func (c *Client) Reports(ctx context.Context, f ReportsFilter) iter.Seq2[Report, error] {
	q := url.Values{}
	setIf(q, "periodicity", f.Periodicity)
	setIf(q, "reportType", f.ReportType)
	return paginate[Report](ctx, c, "/reports/payouts", q, c.pageSizeOr(f.Limit), f.Page, false)
}

// ReportURL returns GET /reports/presigned_url: a URL to the report's CSV.
// The payload may be a bare string or an object with url (or presignedUrl).
func (c *Client) ReportURL(ctx context.Context, reportExecutionID, reportIntegration string) (string, error) {
	if err := required("reportExecutionId", reportExecutionID); err != nil {
		return "", err
	}
	q := url.Values{"reportExecutionId": {reportExecutionID}}
	setIf(q, "reportIntegration", reportIntegration)
	var raw json.RawMessage
	if err := c.getJSON(ctx, "/reports/presigned_url", q, &raw); err != nil {
		return "", err
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, nil
	}
	var o struct {
		URL          string `json:"url"`
		PresignedURL string `json:"presignedUrl"`
	}
	if err := json.Unmarshal(raw, &o); err == nil {
		if o.URL != "" {
			return o.URL, nil
		}
		if o.PresignedURL != "" {
			return o.PresignedURL, nil
		}
	}
	return "", &Error{Method: http.MethodGet, Path: "/reports/presigned_url", Err: errors.New("no url in answer")}
}

// Health returns GET /health. An error status whose envelope still carries
// the health payload is read as that payload (typically UNHEALTHY), not as an
// error [sdk].
//
// That payload is read before any retry: a 503 that says UNHEALTHY is an
// answer, and repeating it ReadRetries times only delays it.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	cl := call{method: http.MethodGet, path: "/health", answered: func(raw []byte) bool {
		var h Health
		_, err := decodeInto(call{}, raw, &h)
		return err == nil && knownHealth(h.Status)
	}}
	raw, status, err := c.do(ctx, cl)
	if err != nil && status == 0 {
		return nil, err
	}
	var h Health
	_, derr := decodeInto(cl, raw, &h)
	if derr == nil && h.Status != "" {
		if err == nil || knownHealth(h.Status) {
			return &h, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	return nil, &Error{Method: cl.method, Path: cl.path, HTTPStatus: status, Messages: []string{"no health status in answer"}}
}

func knownHealth(s string) bool {
	switch s {
	case HealthHealthy, HealthPartialOutage, HealthUnhealthy:
		return true
	}
	return false
}

// RechargeBalance tops up a sandbox origin account with POST
// /accounts/balance-recharge (SANDBOX ONLY, $1,000.00 to $50,000,000.00 per
// call [doc]).
func (c *Client) RechargeBalance(ctx context.Context, accountID string, amountInCents int64) (*Recharge, error) {
	if err := required("account id", accountID); err != nil {
		return nil, err
	}
	body := []byte(`{"accountId":`)
	body = appendString(body, accountID)
	body = append(body, `,"amountInCents":`...)
	body = strconv.AppendInt(body, amountInCents, 10)
	body = append(body, '}')
	cl := call{method: http.MethodPost, path: "/accounts/balance-recharge", body: body, contentType: "application/json"}
	raw, _, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var r Recharge
	if _, err := decodeInto(cl, raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func errSeq[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}
