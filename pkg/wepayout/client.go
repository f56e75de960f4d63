package wepayout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Client calls the WEpayout payouts API. It is safe for concurrent use and
// implements rail.SinglePayouts.
type Client struct {
	base string
	key  *string // behind a pointer: printing a Client never prints it
	cfg  Config

	unknown atomic.Int64
}

var _ rail.SinglePayouts = (*Client)(nil)

// New returns a Client. It fails, wrapping ErrConfig, when APIKey is empty
// or a URL or MerchantID is malformed.
func New(cfg Config) (*Client, error) {
	base, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	key := cfg.APIKey
	cfg.APIKey = ""
	return &Client{base: base, key: &key, cfg: cfg}, nil
}

// String redacts the key.
func (c *Client) String() string { return fmt.Sprintf("wepayout.Client{BaseURL:%q}", c.base) }

// GoString redacts the key.
func (c *Client) GoString() string { return c.String() }

// Rail implements rail.SinglePayouts.
func (c *Client) Rail() rail.Name { return rail.WEpayout }

// BaseURL returns the host root the client calls.
func (c *Client) BaseURL() string { return c.base }

// UnknownStatuses counts the status ids read (answers, not webhooks) that
// MapStatus does not know.
func (c *Client) UnknownStatuses() int64 { return c.unknown.Load() }

// do performs one call and returns the body of a 2xx answer, or a
// *rail.Error. It never repeats a call.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, body []byte, pii []string) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, &rail.Error{Rail: rail.WEpayout, Op: op, Class: rail.Permanent, Code: CodeInvalidRequest,
			Message: "cannot build the request", Err: ErrInvalidRequest}
	}
	req.Header.Set("Authorization", "Bearer "+*c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, transportError(op, err)
	}
	defer resp.Body.Close()
	raw, err := rail.ReadBody(resp, MaxResponseBytes)
	if err != nil {
		// The status line came, the body did not: a create may exist.
		return nil, transportError(op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, httpError(op, resp.StatusCode, raw, pii)
	}
	return raw, nil
}

// badAnswer is a 2xx whose body cannot be read: for a create the payment
// exists, or may.
func badAnswer(op string, err error) *rail.Error {
	c := rail.Permanent
	if op == opCreate {
		c = rail.OutcomeUnknown
	}
	return &rail.Error{Rail: rail.WEpayout, Op: op, Class: c, Code: CodeBadAnswer, Message: "unreadable answer", Err: err}
}

// payload returns the answer's object: bare, or wrapped in {"data": {...}}
// [ours: accepted in case].
func payload(raw []byte) []byte {
	t := bytes.TrimSpace(raw)
	var w struct {
		Data json.RawMessage `json:"data"`
		ID   json.RawMessage `json:"id"`
	}
	if json.Unmarshal(t, &w) == nil && w.ID == nil && len(w.Data) > 0 && bytes.TrimSpace(w.Data)[0] == '{' {
		return w.Data
	}
	return t
}

// NewCreatePaymentRequest builds the create body of r, checked with
// Validate first: ErrInvalidRequest (wrapped, without personal data) when
// r is not payable on this rail. The notification URL is r.CallbackURL,
// else Config.NotificationURL.
func (c *Client) NewCreatePaymentRequest(r rail.PayoutRequest) (*CreatePaymentRequest, error) {
	if vs := ValidateRequest(r); len(vs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRequest, vs.Message())
	}
	p := r.Payee
	body := &CreatePaymentRequest{
		PaymentMethod: PaymentMethodPIX,
		Currency:      CurrencyBRL,
		Country:       CountryBR,
		Amount:        Cents(r.AmountInCents),
		Invoice:       r.ID,
		Beneficiary:   Beneficiary{Name: p.Name, Document: Document{Type: p.LegalIDType, Number: p.LegalID}},
		Description:   r.Description,
	}
	if p.PixKey != "" {
		body.PIX = &PIX{Key: p.PixKey}
	} else {
		body.BankCode, body.BankBranch, body.BankBranchDigit = p.BankCode, p.Branch, p.BranchDigit
		body.Account, body.AccountDigit, body.AccountType = p.AccountNumber, p.AccountDigit, AccountTypes[p.AccountType]
	}
	if c.cfg.MerchantID != "" {
		n := json.Number(c.cfg.MerchantID)
		body.MerchantID = &n
	}
	body.NotificationURL = r.CallbackURL
	if body.NotificationURL == "" {
		body.NotificationURL = c.cfg.NotificationURL
	}
	return body, nil
}

// CreatePayment sends POST /v2/payout/payments once, its body written by
// appendCreateBody (json.Marshal for a body it declines). On failure the
// *rail.Error's Class says whether the payment may exist: OutcomeUnknown
// (a 5xx, a 429, a timeout, a reset, an unreadable 2xx): never send it
// again before Find proves it absent.
func (c *Client) CreatePayment(ctx context.Context, body *CreatePaymentRequest) (*Payment, error) {
	b, ok := appendCreateBody(make([]byte, 0, 512), body)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, &rail.Error{Rail: rail.WEpayout, Op: opCreate, Class: rail.Rejected, Code: CodeInvalidRequest,
				Message: "cannot encode the request", Err: ErrInvalidRequest}
		}
	}
	raw, err := c.do(ctx, opCreate, http.MethodPost, "/v2/payout/payments", nil, b, body.pii())
	if err != nil {
		return nil, err
	}
	p, err := decodePayment(raw)
	if err != nil {
		return nil, badAnswer(opCreate, err)
	}
	if p.ID == "" {
		return nil, badAnswer(opCreate, fmt.Errorf("the answer has no id"))
	}
	return &p, nil
}

// Create implements rail.SinglePayouts: it validates r (a Rejected error,
// nothing sent, when it is not payable here) and creates the payment. The
// answer's status 7 Awaiting (or none) maps to PENDING.
func (c *Client) Create(ctx context.Context, r rail.PayoutRequest) (rail.Payout, error) {
	body, err := c.NewCreatePaymentRequest(r)
	if err != nil {
		return rail.Payout{}, &rail.Error{Rail: rail.WEpayout, Op: opCreate, Class: rail.Rejected, Code: CodeInvalidRequest,
			Message: strings.TrimPrefix(err.Error(), ErrInvalidRequest.Error()+": "), Err: ErrInvalidRequest}
	}
	p, err := c.CreatePayment(ctx, body)
	if err != nil {
		return rail.Payout{}, err
	}
	if id := p.OurID(); id != "" && id != r.ID {
		// A payment under another invoice is not ours: adopted, another
		// request's payment would be handed off as this one's. Whether
		// ours was made is unknown: the lookup by our id decides.
		if strings.EqualFold(strings.TrimSpace(id), r.ID) {
			// Ours, perhaps, in WEpayout's own form, which its filter
			// may match alone: the caller looks that form up too.
			return rail.Payout{}, &rail.Error{Rail: rail.WEpayout, Op: opCreate, Class: rail.OutcomeUnknown, Code: CodeBadAnswer,
				Message: "the create was answered with our invoice in another case or with spaces", Echo: id}
		}
		return rail.Payout{}, &rail.Error{Rail: rail.WEpayout, Op: opCreate, Class: rail.OutcomeUnknown, Code: CodeBadAnswer,
			Message: "the create was answered with a payment under another invoice"}
	}
	out := c.payout(p)
	if p.Status.ID == 0 {
		out.Status = payout.StatusPending // a payment just created is pending [ours]
	}
	if out.ID == "" {
		out.ID = r.ID
	}
	if out.AmountInCents == 0 {
		out.AmountInCents = r.AmountInCents
	}
	return out, nil
}

// payout maps p and counts an unknown status.
func (c *Client) payout(p *Payment) rail.Payout {
	out := p.Payout()
	if _, _, known := MapStatus(p.Status.ID, p.StatusDetail); !known && p.Status.ID != 0 {
		c.unknown.Add(1)
		if c.cfg.OnUnknownStatus != nil {
			c.cfg.OnUnknownStatus(p.Status.ID)
		}
	}
	return out
}

// GetPayment reads GET /v2/payout/payments/{id}. An unknown id is a
// *rail.Error with HTTPStatus 404 and class Permanent.
func (c *Client) GetPayment(ctx context.Context, id string) (*Payment, error) {
	if strings.TrimSpace(id) == "" {
		return nil, &rail.Error{Rail: rail.WEpayout, Op: opGet, Class: rail.Permanent, Code: CodeInvalidRequest,
			Message: "empty payment id", Err: ErrInvalidRequest}
	}
	raw, err := c.do(ctx, opGet, http.MethodGet, "/v2/payout/payments/"+url.PathEscape(id), nil, nil, nil)
	if err != nil {
		return nil, err
	}
	p, err := decodePayment(raw)
	if err != nil {
		return nil, badAnswer(opGet, err)
	}
	return &p, nil
}

// Get implements rail.SinglePayouts.
func (c *Client) Get(ctx context.Context, providerID string) (rail.Payout, error) {
	p, err := c.GetPayment(ctx, providerID)
	if err != nil {
		return rail.Payout{}, err
	}
	return c.payout(p), nil
}

// ListPayments reads one page of GET /v2/payout/payments.
func (c *Client) ListPayments(ctx context.Context, q ListQuery) (*PaymentPage, error) {
	return c.listPage(ctx, opList, q)
}

func (c *Client) listPage(ctx context.Context, op string, q ListQuery) (*PaymentPage, error) {
	v := url.Values{}
	if q.ExternalID != "" {
		v.Set(externalIDParam, q.ExternalID)
	}
	if q.StatusID != 0 {
		v.Set("status_id", strconv.Itoa(q.StatusID))
	}
	if !q.CreatedAtStart.IsZero() {
		v.Set("created_at_start", q.CreatedAtStart.In(SaoPaulo).Format("2006-01-02"))
	}
	if !q.CreatedAtEnd.IsZero() {
		v.Set("created_at_end", q.CreatedAtEnd.In(SaoPaulo).Format("2006-01-02"))
	}
	page, per := q.Page, q.PerPage
	if page <= 0 {
		page = 1
	}
	if per <= 0 || per > MaxPerPage {
		per = c.cfg.PageSize
	}
	v.Set("page", strconv.Itoa(page))
	v.Set("per_page", strconv.Itoa(per))
	raw, err := c.do(ctx, op, http.MethodGet, "/v2/payout/payments", v, nil, nil)
	if err != nil {
		return nil, err
	}
	if pg, ok := readEmptyPage(raw); ok {
		return &pg, nil
	}
	var pg PaymentPage
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '[' { // a bare array [ours: accepted in case]
		err = json.Unmarshal(t, &pg.Data)
	} else {
		err = json.Unmarshal(t, &pg)
		if err == nil && pg.Data == nil {
			// {}, null, "data": null, a gateway's {"message": ...}: not
			// an empty listing, and never a proof of absence.
			err = fmt.Errorf("the answer has no data array")
		}
	}
	if err != nil {
		return nil, badAnswer(op, err)
	}
	return &pg, nil
}

// Payments walks every page of the listing from q.Page (default 1): the
// highest meta.last_page any page announced says when to stop (a page
// announcing fewer is a replica behind); without meta, a short page does
// [ours]. A page that shows nothing new (a server ignoring page) is an
// error rather than an endless walk. An empty page that a meta announced
// payments on (below a last_page, or within a total) is an error too:
// payments are never deleted, so it is a page the server failed to fill,
// not the end. A page announcing a smaller total or last_page than an
// earlier page (no status filter) is a replica behind too, and is asked
// for again: its payments may sit a place earlier than on the pages read,
// one of them then on no page the walk reads. A page that fails retryably
// is asked for again (rail.ReadPage); it stops at the first error that
// outlasts that, which it yields.
func (c *Client) Payments(ctx context.Context, q ListQuery) iter.Seq2[Payment, error] {
	return c.walk(ctx, opList, q)
}

func (c *Client) walk(ctx context.Context, op string, q ListQuery) iter.Seq2[Payment, error] {
	return func(yield func(Payment, error) bool) {
		if q.Page <= 0 {
			q.Page = 1
		}
		if q.PerPage <= 0 || q.PerPage > MaxPerPage {
			q.PerPage = c.cfg.PageSize
		}
		seen := map[ID]bool{}
		var ext rail.Extent // what the pages read announced
		for {
			pg, err := rail.ReadPage(ctx, func() (*PaymentPage, error) {
				pg, err := c.listPage(ctx, op, q)
				if err == nil && pg.Meta != nil && q.StatusID == 0 {
					// Payments are never deleted, and without a status
					// filter none leaves the listing: a page that
					// disagrees with an earlier one (rail.Extent) is
					// asked again, never taken.
					if lag := ext.Check(pg.Meta.Total, pg.Meta.LastPage, q.Frozen); lag != rail.InStep {
						return nil, &rail.Error{Rail: rail.WEpayout, Op: op, Class: rail.Retryable, Code: CodeBadAnswer,
							Message: fmt.Sprintf("page %d announces %d payments, %d pages; earlier pages %d, %d: %v",
								q.Page, pg.Meta.Total, pg.Meta.LastPage, ext.Records, ext.Pages, lag)}
					}
				}
				if err != nil || len(pg.Data) > 0 {
					return pg, err
				}
				// An empty page is checked against what every page
				// announced, its own meta (when it has one) and the
				// earlier pages' (a page without meta, after one that
				// announced more pages, is not the end either).
				l, total, per := ext.Pages, 0, q.PerPage
				if pg.Meta != nil {
					l, total = max(l, pg.Meta.LastPage), pg.Meta.Total
					if pg.Meta.PerPage > 0 {
						per = pg.Meta.PerPage
					}
				}
				if q.Page < l || (q.Page > 1 && q.Page <= l) || total > (q.Page-1)*per {
					return nil, &rail.Error{Rail: rail.WEpayout, Op: op, Class: rail.Retryable, Code: CodeBadAnswer,
						Message: fmt.Sprintf("page %d is empty, the listing announcing %d pages, %d payments", q.Page, l, total)}
				}
				return pg, nil
			})
			if err != nil {
				yield(Payment{}, err)
				return
			}
			fresh := 0
			for i := range pg.Data {
				if !seen[pg.Data[i].ID] {
					seen[pg.Data[i].ID] = true
					fresh++
				}
				if !yield(pg.Data[i], nil) {
					return
				}
			}
			if len(pg.Data) == 0 {
				return
			}
			if fresh == 0 {
				// A server that ignores page would loop us forever.
				yield(Payment{}, &rail.Error{Rail: rail.WEpayout, Op: op, Class: rail.Permanent, Code: CodeBadAnswer,
					Message: fmt.Sprintf("page %d repeats the payments already listed", q.Page)})
				return
			}
			if pg.Meta != nil {
				ext.Add(pg.Meta.Total, pg.Meta.LastPage)
			}
			// The highest last_page any page announced, not this page's:
			// payments are never deleted, so a page announcing fewer pages
			// than an earlier one is a replica behind, not the end.
			if ext.Pages > 0 {
				if q.Page >= ext.Pages {
					return
				}
			} else if len(pg.Data) < q.PerPage {
				return
			}
			q.Page++
		}
	}
}

// Find implements rail.SinglePayouts: every payment WEpayout holds under
// our id, looked up by external_id over every page. It filters the answer
// itself, and fails (class Permanent) rather than prove an absence when an
// item carries no id of ours to compare, or names ours in another case or
// with spaces around it.
func (c *Client) Find(ctx context.Context, id string) ([]rail.Payout, error) {
	if strings.TrimSpace(id) == "" {
		return nil, &rail.Error{Rail: rail.WEpayout, Op: opFind, Class: rail.Permanent, Code: CodeInvalidRequest,
			Message: "empty id", Err: ErrInvalidRequest}
	}
	var out []rail.Payout
	seen := map[ID]bool{}
	for p, err := range c.walk(ctx, opFind, ListQuery{ExternalID: id}) {
		if err != nil {
			return nil, err
		}
		if p.OurID() == "" {
			return nil, &rail.Error{Rail: rail.WEpayout, Op: opFind, Class: rail.Permanent, Code: CodeBadAnswer,
				Message: "a listed payment carries neither invoice nor external_id: absence cannot be proven"}
		}
		// Either field may be ours (the listing filters by external_id,
		// the create answers invoice): a payment naming our id in one of
		// them is ours, whatever the other says.
		if p.Invoice != id && p.ExternalID != id {
			if rail.FoldID(p.Invoice) == rail.FoldID(id) || rail.FoldID(p.ExternalID) == rail.FoldID(id) {
				return nil, &rail.Error{Rail: rail.WEpayout, Op: opFind, Class: rail.Permanent, Code: CodeBadAnswer,
					Message: "a listed payment names our id in another case, with spaces or without its leading zeros: absence cannot be proven"}
			}
			continue
		}
		if seen[p.ID] {
			continue
		}
		seen[p.ID] = true
		po := c.payout(&p)
		po.ID = id
		out = append(out, po)
	}
	return out, nil
}

// List implements rail.SinglePayouts: the payouts the filter selects, each
// once. The API filters by whole days (created_at_start/_end, in
// SaoPaulo); the client narrows to [From, To] itself.
func (c *Client) List(ctx context.Context, f rail.ListFilter) iter.Seq2[rail.Payout, error] {
	return func(yield func(rail.Payout, error) bool) {
		match := func(p *Payment) bool {
			if f.ID != "" && p.Invoice != f.ID && p.ExternalID != f.ID {
				return false
			}
			t := p.CreatedAt.Time
			if !t.IsZero() && ((!f.From.IsZero() && t.Before(f.From)) || (!f.To.IsZero() && t.After(f.To))) {
				return false
			}
			return true
		}
		if f.ProviderID != "" {
			p, err := c.GetPayment(ctx, f.ProviderID)
			if err != nil {
				var re *rail.Error
				if asRail(err, &re) && re.HTTPStatus == http.StatusNotFound {
					return
				}
				yield(rail.Payout{}, err)
				return
			}
			if match(p) {
				yield(c.payout(p), nil)
			}
			return
		}
		seen := map[ID]bool{}
		for p, err := range c.walk(ctx, opList, ListQuery{ExternalID: f.ID, CreatedAtStart: f.From, CreatedAtEnd: f.To, Frozen: f.Frozen}) {
			if err != nil {
				yield(rail.Payout{}, err)
				return
			}
			if seen[p.ID] || !match(&p) {
				continue
			}
			seen[p.ID] = true
			po := c.payout(&p)
			if p.Invoice != "" && p.ExternalID != "" && p.Invoice != p.ExternalID {
				// Two ids, either of which may be ours: no one id names
				// it, and a recovery must not index one and prove the
				// other's payee new.
				po.ID = ""
			}
			if !yield(po, nil) {
				return
			}
		}
	}
}

// Balance reads GET /v2/account/{merchantId}/balance?currency=BRL for
// Config.MerchantID.
func (c *Client) Balance(ctx context.Context) (*Balance, error) {
	if c.cfg.MerchantID == "" {
		return nil, &rail.Error{Rail: rail.WEpayout, Op: opBalance, Class: rail.Permanent, Code: CodeInvalidRequest,
			Message: "no MerchantID configured", Err: ErrInvalidRequest}
	}
	raw, err := c.do(ctx, opBalance, http.MethodGet, "/v2/account/"+url.PathEscape(c.cfg.MerchantID)+"/balance",
		url.Values{"currency": {CurrencyBRL}}, nil, nil)
	if err != nil {
		return nil, err
	}
	var b Balance
	if err := json.Unmarshal(payload(raw), &b); err != nil {
		return nil, badAnswer(opBalance, err)
	}
	return &b, nil
}
