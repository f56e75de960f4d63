package smartfastpay

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// secrets sits behind a pointer so that printing a struct that embeds a
// Client prints an address, never the values.
type secrets struct {
	basic         string // "Basic base64(id:secret)"
	webhookSecret string
}

// Client calls the SmartFastPay payouts API. It is safe for concurrent use.
type Client struct {
	base          string
	sec           *secrets
	hc            *http.Client
	ua            string
	pageSize      int
	callback      string
	refreshBefore time.Duration
	webhookMaxAge time.Duration
	now           func() time.Time
	log           *slog.Logger

	// tokSem is a one-slot lock around the token cache that a waiting
	// caller can abandon with its context.
	tokSem     chan struct{}
	tok        string
	tokRefresh time.Time // when the cached token must be replaced

	unknownStatuses atomic.Int64
	tokenFetches    atomic.Int64
}

var _ rail.SinglePayouts = (*Client)(nil)

// New returns a Client. It fails, wrapping ErrConfig, when a credential is
// missing, BaseURL is not an absolute http(s) URL without a path, or
// PageSize is out of range.
func New(cfg Config) (*Client, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = SandboxBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: BaseURL (%s) %q is not an absolute http(s) URL", ErrConfig, EnvBaseURL, base)
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: ClientID (%s) is empty", ErrConfig, EnvClientID)
	}
	if cfg.ClientSecret == "" {
		return nil, fmt.Errorf("%w: ClientSecret (%s) is empty", ErrConfig, EnvClientSecret)
	}
	if cfg.PageSize < 0 || cfg.PageSize > MaxPageSize {
		return nil, fmt.Errorf("%w: PageSize %d is not within 1..%d", ErrConfig, cfg.PageSize, MaxPageSize)
	}
	c := &Client{
		base:          base,
		sec:           &secrets{basic: "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.ClientID+":"+cfg.ClientSecret)), webhookSecret: cfg.WebhookSecret},
		hc:            cfg.HTTPClient,
		ua:            cfg.UserAgent,
		pageSize:      cfg.PageSize,
		callback:      cfg.CallbackURL,
		refreshBefore: cfg.RefreshBefore,
		webhookMaxAge: cfg.WebhookMaxAge,
		now:           cfg.Now,
		log:           cfg.Logger,
		tokSem:        make(chan struct{}, 1),
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: DefaultTimeout}
	}
	c.hc = rail.NoRedirects(c.hc)
	if c.ua == "" {
		c.ua = DefaultUserAgent
	}
	if c.pageSize == 0 {
		c.pageSize = DefaultPageSize
	}
	if c.refreshBefore <= 0 {
		c.refreshBefore = DefaultRefreshBefore
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// String redacts the secrets.
func (c *Client) String() string { return fmt.Sprintf("smartfastpay.Client{BaseURL:%q}", c.base) }

// GoString redacts the secrets.
func (c *Client) GoString() string { return c.String() }

// Rail implements rail.SinglePayouts.
func (c *Client) Rail() rail.Name { return rail.SmartFastPay }

// UnknownStatuses counts the payout statuses read that MapStatus does not
// know (each also logged at warn level).
func (c *Client) UnknownStatuses() int64 { return c.unknownStatuses.Load() }

// TokenFetches counts the tokens fetched so far.
func (c *Client) TokenFetches() int64 { return c.tokenFetches.Load() }

// Webhooks returns the callback verifier configured by WebhookSecret,
// WebhookMaxAge and Now.
func (c *Client) Webhooks() Webhooks {
	return Webhooks{Secret: c.sec.webhookSecret, MaxAge: c.webhookMaxAge, Now: c.now}
}

// token returns a token good for a call. stale, when not empty, is a token
// the provider just refused: it is dropped and a new one fetched, unless a
// concurrent caller already replaced it.
func (c *Client) token(ctx context.Context, stale string) (string, *rail.Error) {
	select {
	case c.tokSem <- struct{}{}:
	case <-ctx.Done():
		return "", &rail.Error{Rail: rail.SmartFastPay, Op: "token", Class: rail.Retryable, Err: ctx.Err()}
	}
	defer func() { <-c.tokSem }()
	if stale != "" && c.tok == stale {
		c.tok = ""
	}
	if c.tok != "" && c.now().Before(c.tokRefresh) {
		return c.tok, nil
	}
	start := c.now()
	tw, err := c.fetchToken(ctx)
	if err != nil {
		return "", err
	}
	life := tw.lifetime()
	if life == 0 {
		life = 5 * time.Minute // [ours]: no expires_in; assume a short life
	}
	margin := min(c.refreshBefore, life/2)
	c.tok, c.tokRefresh = tw.AccessToken, start.Add(life-margin)
	return c.tok, nil
}

// fetchToken is POST /oauth2/token with HTTP Basic and no body [doc]. A
// 4xx is Unauthorized (OAuth2 servers answer 400 invalid_client too), a
// 5xx, 429 or transport failure Retryable: a token request changes nothing.
func (c *Client) fetchToken(ctx context.Context) (tokenWire, *rail.Error) {
	c.tokenFetches.Add(1)
	var tw tokenWire
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+PathToken, http.NoBody)
	if err != nil {
		return tw, invalid("token", ErrInvalidRequest, "cannot build the token request")
	}
	req.Header.Set("Authorization", c.sec.basic)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	raw, status, rerr := c.roundTrip(req, "token", false)
	if rerr != nil {
		return tw, rerr
	}
	if status < 200 || status > 299 {
		msg, code := providerMessage(raw, nil)
		cl := rail.Unauthorized
		if status >= 500 || status == http.StatusTooManyRequests {
			cl = rail.Retryable
		}
		return tw, &rail.Error{Rail: rail.SmartFastPay, Op: "token", HTTPStatus: status, Code: code, Message: msg, Class: cl}
	}
	if err := json.Unmarshal(unwrap(raw), &tw); err != nil || tw.AccessToken == "" {
		return tw, &rail.Error{Rail: rail.SmartFastPay, Op: "token", HTTPStatus: status, Message: "answer without access_token", Class: rail.Retryable}
	}
	return tw, nil
}

// roundTrip sends req and reads the answer (bounded).
func (c *Client) roundTrip(req *http.Request, op string, create bool) ([]byte, int, *rail.Error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, transportError(op, create, err)
	}
	defer resp.Body.Close()
	raw, err := rail.ReadBody(resp, MaxResponseBytes)
	if err != nil {
		// The status line came, the body did not: a create may exist.
		return nil, 0, transportError(op, create, err)
	}
	return raw, resp.StatusCode, nil
}

// call describes one API call.
type call struct {
	op      string
	method  string
	path    string // escaped, relative to the host
	query   url.Values
	body    []byte
	create  bool     // POST /v1/payout: may pay
	getByID bool     // GET /v1/payout/{id}: a 404 means no such payout
	pii     []string // the payee's values the body sent: masked in an error answer
}

// do sends cl with a Bearer token. On a 401 it fetches a new token once and
// sends a read again. A create is never sent again: nothing published says
// SmartFastPay checks the token before it applies the call (a token that
// expires while the call is applied, a gateway that answers 401 after
// forwarding it), so a create answered 401 is OutcomeUnknown once the new
// token came (a refused one is Unauthorized), and the caller looks our id
// up before any other POST [ours].
func (c *Client) do(ctx context.Context, cl call) ([]byte, *rail.Error) {
	tok, err := c.token(ctx, "")
	if err != nil {
		return nil, err
	}
	raw, status, err := c.send(ctx, cl, tok)
	if err != nil {
		return nil, err
	}
	if status != http.StatusUnauthorized {
		return raw, c.answerError(cl, status, raw)
	}
	if tok, err = c.token(ctx, tok); err != nil {
		if cl.create && err.Class != rail.Unauthorized {
			err = c.answerError(cl, status, raw)
			err.Class = rail.OutcomeUnknown
		}
		return nil, err
	}
	if cl.create {
		err = c.answerError(cl, status, raw)
		err.Class = rail.OutcomeUnknown
		return nil, err
	}
	raw, status, err = c.send(ctx, cl, tok)
	if err != nil {
		return nil, err
	}
	return raw, c.answerError(cl, status, raw)
}

func (c *Client) send(ctx context.Context, cl call, tok string) ([]byte, int, *rail.Error) {
	u := c.base + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	var body io.Reader = http.NoBody
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u, body)
	if err != nil {
		return nil, 0, invalid(cl.op, ErrInvalidRequest, "cannot build the request")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// No Idempotency-Key header: net/http would then replay a POST on a
	// reused connection that died, and SmartFastPay would pay twice.
	return c.roundTrip(req, cl.op, cl.create)
}

// answerError returns nil for a 2xx, else the classified *rail.Error.
func (c *Client) answerError(cl call, status int, raw []byte) *rail.Error {
	if status >= 200 && status <= 299 {
		return nil
	}
	msg, code := providerText(raw)
	class := classOf(cl.create, cl.getByID, status)
	// Read unmasked: masking (a payee's value in the wording, the cut to
	// 200 bytes) could hide that our id was refused as taken, and a payout
	// SmartFastPay holds would be read as a refusal.
	if class == rail.Rejected && idTaken(msg) {
		class = rail.AlreadyExists
	}
	msg, code = maskSent(msg, code, cl.pii)
	return &rail.Error{Rail: rail.SmartFastPay, Op: cl.op, HTTPStatus: status, Code: code, Message: msg, Class: class}
}

// unwrap returns the payload of an answer: data when the body is an object
// with a "data" key ({"requestId", "data"} [doc]), else the body itself (a
// bare answer [seed]).
func unwrap(raw []byte) []byte {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return t
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(t, &env) != nil || len(env.Data) == 0 || string(env.Data) == "null" {
		return t
	}
	return env.Data
}

// mapped builds a rail.Payout from a provider id and status, logging and
// counting a status MapStatus does not know.
func (c *Client) mapped(providerID, status string) rail.Payout {
	st := MapStatus(status)
	if st == "" {
		c.unknownStatuses.Add(1)
		c.log.Warn("smartfastpay: unknown payout status", "providerId", providerID, "status", Mask(status))
	}
	return rail.Payout{ProviderID: providerID, ProviderStatus: status, Status: st}
}

// ValidID reports whether id is usable as our id on SmartFastPay: 1-64 of
// [A-Za-z0-9-] (the requestId rule). The listing takes a comma list of
// transaction ids, so a comma would look up several.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
			return false
		}
	}
	return true
}

// Body builds the POST /v1/payout body for r: customer_id per CustomerID,
// the payee's name, email, document (LegalID) and phone, the amount in
// units, COP, COL, the callback (r.CallbackURL, else Config.CallbackURL)
// and transaction.id = r.ID.
func (c *Client) Body(r rail.PayoutRequest) (CreateRequest, *rail.Error) {
	if !ValidID(r.ID) {
		return CreateRequest{}, invalid("create", ErrInvalidRequest, "our id is not 1-64 of [A-Za-z0-9-]")
	}
	if r.Currency != "" && r.Currency != "COP" {
		return CreateRequest{}, invalid("create", ErrInvalidPayout, "currency must be COP")
	}
	if r.AmountInCents <= 0 {
		return CreateRequest{}, invalid("create", ErrInvalidPayout, "amount must be positive")
	}
	cb := r.CallbackURL
	if cb == "" {
		cb = c.callback
	}
	if cb == "" {
		return CreateRequest{}, invalid("create", ErrInvalidRequest, "no callback URL ("+EnvCallbackURL+")")
	}
	return CreateRequest{
		CustomerID: CustomerID(r.Payee), Name: r.Payee.Name, Email: r.Payee.Email, Document: r.Payee.LegalID,
		Phone: r.Payee.Phone, Amount: Amount(r.AmountInCents), Currency: "COP", Country: "COL", Callback: cb,
		Transaction: Transaction{ID: r.ID},
	}, nil
}

// Create implements rail.SinglePayouts: POST /v1/payout [seed]. A failure
// that may have paid (a timeout, a reset, a 5xx, 429 or 401, an unreadable
// 2xx) is OutcomeUnknown: look the id up with Find before sending it again.
func (c *Client) Create(ctx context.Context, r rail.PayoutRequest) (rail.Payout, error) {
	body, rerr := c.Body(r)
	if rerr != nil {
		return rail.Payout{}, rerr
	}
	b, err := appendCreateBody(make([]byte, 0, 384), &body)
	if err != nil {
		return rail.Payout{}, invalid("create", ErrInvalidRequest, "cannot encode the body")
	}
	raw, rerr := c.do(ctx, call{op: "create", method: http.MethodPost, path: PathPayout, body: b, create: true,
		pii: []string{body.CustomerID, body.Name, body.Email, body.Document, body.Phone}})
	if rerr != nil {
		return rail.Payout{}, rerr
	}
	res, ok := readCreateAnswer(raw)
	if !ok {
		if res, err = decodeCreateAnswer(raw); err != nil || res.id == "" {
			return rail.Payout{}, &rail.Error{Rail: rail.SmartFastPay, Op: "create", HTTPStatus: http.StatusOK,
				Message: "answer without a payout id", Class: rail.OutcomeUnknown, Err: err}
		}
	}
	p := c.mapped(res.id, res.status)
	p.ID, p.AmountInCents, p.CreatedAt = r.ID, r.AmountInCents, c.now()
	return p, nil
}

// Get implements rail.SinglePayouts: GET /v1/payout/{id} [seed]. An unknown
// id is a *rail.Error with HTTPStatus 404, class Permanent.
func (c *Client) Get(ctx context.Context, providerID string) (rail.Payout, error) {
	if providerID == "" {
		return rail.Payout{}, invalid("get", ErrInvalidRequest, "empty provider id")
	}
	raw, rerr := c.do(ctx, call{op: "get", method: http.MethodGet, path: PathPayout + "/" + url.PathEscape(providerID), getByID: true})
	if rerr != nil {
		return rail.Payout{}, rerr
	}
	var rec PayoutRecord
	if err := json.Unmarshal(unwrap(raw), &rec); err != nil || rec.ID == "" {
		return rail.Payout{}, &rail.Error{Rail: rail.SmartFastPay, Op: "get", HTTPStatus: http.StatusOK,
			Message: "unreadable payout", Class: rail.Retryable, Err: err}
	}
	return rec.payout(c.mapped), nil
}

// ListQuery selects payouts in the listing [seed]. Zero fields do not
// filter.
type ListQuery struct {
	TransactionIDs []string // our ids (sent as a comma list)
	CustomerID     string
	Start, End     time.Time // start_time, end_time (RFC 3339)
}

// ListPayouts walks GET /v1/payouts page by page (limit = the page size,
// sort = ListSort) until a page is short [ours]. A page that fails
// retryably is asked for again (rail.ReadPage); it stops at the first
// error that outlasts that, which it yields.
func (c *Client) ListPayouts(ctx context.Context, q ListQuery) iter.Seq2[rail.Payout, error] {
	return func(yield func(rail.Payout, error) bool) {
		v := url.Values{}
		v.Set("limit", strconv.Itoa(c.pageSize))
		v.Set("sort", ListSort)
		for _, id := range q.TransactionIDs {
			if !ValidID(id) {
				yield(rail.Payout{}, invalid("list", ErrInvalidRequest, "our id is not 1-64 of [A-Za-z0-9-]"))
				return
			}
		}
		if len(q.TransactionIDs) > 0 {
			v.Set("transaction_id", strings.Join(q.TransactionIDs, ","))
		}
		if q.CustomerID != "" {
			v.Set("customer_id", q.CustomerID)
		}
		// Whole seconds, widened outwards: the start rounded down, the end
		// up, so nothing made within a second of either edge is lost.
		if !q.Start.IsZero() {
			v.Set("start_time", q.Start.UTC().Truncate(time.Second).Format(time.RFC3339))
		}
		if !q.End.IsZero() {
			end := q.End.UTC()
			if t := end.Truncate(time.Second); !t.Equal(end) {
				end = t.Add(time.Second)
			}
			v.Set("end_time", end.Format(time.RFC3339))
		}
		var prevFirst string
		for page := 1; ; page++ {
			v.Set("page", strconv.Itoa(page))
			// A page that failed retryably, or came back unreadable, is
			// asked for again (rail.ReadPage).
			recs, err := rail.ReadPage(ctx, func() ([]PayoutRecord, error) {
				raw, rerr := c.do(ctx, call{op: "list", method: http.MethodGet, path: PathPayouts, query: v})
				if rerr != nil {
					return nil, rerr
				}
				var recs []PayoutRecord
				if err := json.Unmarshal(unwrap(raw), &recs); err != nil {
					return nil, &rail.Error{Rail: rail.SmartFastPay, Op: "list", HTTPStatus: http.StatusOK,
						Message: "unreadable page", Class: rail.Retryable, Err: err}
				}
				if recs == nil {
					// null (bare, or as data): no array at all, which is
					// not an empty page and never a proof of absence.
					return nil, &rail.Error{Rail: rail.SmartFastPay, Op: "list", HTTPStatus: http.StatusOK,
						Message: "unreadable page: no array", Class: rail.Retryable}
				}
				return recs, nil
			})
			if err != nil {
				yield(rail.Payout{}, err)
				return
			}
			if len(recs) > 0 {
				// A server that ignores page would loop for ever.
				if page > 1 && string(recs[0].ID) == prevFirst {
					yield(rail.Payout{}, &rail.Error{Rail: rail.SmartFastPay, Op: "list", HTTPStatus: http.StatusOK,
						Message: "page " + strconv.Itoa(page) + " repeats the previous page", Class: rail.Permanent})
					return
				}
				prevFirst = string(recs[0].ID)
			}
			for _, r := range recs {
				if !yield(r.payout(c.mapped), nil) {
					return
				}
			}
			if len(recs) < c.pageSize {
				return
			}
		}
	}
}

// Find implements rail.SinglePayouts: every payout the listing holds under
// our id (transaction_id), read to the last page and matched exactly.
// None proves absence only once no earlier attempt can still land (see
// pkg/rail). A listed payout without a transaction_id, or naming our id
// in another case or with spaces around it, proves nothing: Find fails
// (unprovable) rather than call the payee absent.
func (c *Client) Find(ctx context.Context, id string) ([]rail.Payout, error) {
	if !ValidID(id) {
		return nil, invalid("find", ErrInvalidRequest, "our id is not 1-64 of [A-Za-z0-9-]")
	}
	var out []rail.Payout
	for p, err := range c.ListPayouts(ctx, ListQuery{TransactionIDs: []string{id}}) {
		if err != nil {
			if re, ok := err.(*rail.Error); ok {
				re.Op = "find"
			}
			return nil, err
		}
		if p.ID == id {
			out = append(out, p)
		} else if err := unprovable(p.ID, func(folded string) bool { return folded == rail.FoldID(id) }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// unprovable fails a lookup whose listing holds a payout that may be ours
// although its transaction_id is not one of our ids exactly: none at all,
// or one that ours matches once case, surrounding spaces and an all-digit
// id's leading zeros are ignored (ours reports whether a rail.FoldID form is
// one of ours). Calling the payee absent then could pay it twice.
func unprovable(listed string, ours func(folded string) bool) error {
	switch {
	case listed == "":
		return &rail.Error{Rail: rail.SmartFastPay, Op: "find", HTTPStatus: http.StatusOK, Class: rail.Permanent,
			Message: "a listed payout carries no transaction_id: absence cannot be proven"}
	case ours(rail.FoldID(listed)):
		return &rail.Error{Rail: rail.SmartFastPay, Op: "find", HTTPStatus: http.StatusOK, Class: rail.Permanent,
			Message: "a listed payout names one of our ids in another case, with spaces or as a number: absence cannot be proven"}
	}
	return nil
}

// FindMany implements rail.ManyFinder: Find for up to MaxFindMany ids in one
// listing (transaction_id as a comma list), read to the last page and
// matched exactly.
func (c *Client) FindMany(ctx context.Context, ids []string) (map[string][]rail.Payout, error) {
	if len(ids) > MaxFindMany {
		return nil, invalid("find", ErrInvalidRequest, "more than "+strconv.Itoa(MaxFindMany)+" ids in one lookup")
	}
	want := make(map[string]bool, len(ids))
	folded := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !ValidID(id) {
			return nil, invalid("find", ErrInvalidRequest, "our id is not 1-64 of [A-Za-z0-9-]")
		}
		want[id] = true
		folded[rail.FoldID(id)] = true
	}
	out := map[string][]rail.Payout{}
	if len(ids) == 0 {
		return out, nil
	}
	for p, err := range c.ListPayouts(ctx, ListQuery{TransactionIDs: ids}) {
		if err != nil {
			if re, ok := err.(*rail.Error); ok {
				re.Op = "find"
			}
			return nil, err
		}
		if want[p.ID] {
			out[p.ID] = append(out[p.ID], p)
		} else if err := unprovable(p.ID, func(f string) bool { return folded[f] }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MaxFindMany is how many ids FindMany takes at once: a page of the listing
// (MaxPageSize), and a query string of about 2.6 KB at most.
const MaxFindMany = MaxPageSize

// MaxFindMany implements rail.ManyFinder.
func (c *Client) MaxFindMany() int { return MaxFindMany }

// List implements rail.SinglePayouts. A ProviderID filter reads that one
// payout (the listing has no such filter).
func (c *Client) List(ctx context.Context, f rail.ListFilter) iter.Seq2[rail.Payout, error] {
	if f.ProviderID != "" {
		return func(yield func(rail.Payout, error) bool) {
			p, err := c.Get(ctx, f.ProviderID)
			if err != nil {
				yield(rail.Payout{}, err)
				return
			}
			if f.ID == "" || p.ID == f.ID {
				yield(p, nil)
			}
		}
	}
	q := ListQuery{Start: f.From, End: f.To}
	if f.ID != "" {
		q.TransactionIDs = []string{f.ID}
	}
	return c.ListPayouts(ctx, q)
}

// Balance reads GET /balance?currency=COP [sdk].
func (c *Client) Balance(ctx context.Context) (Balance, error) {
	raw, rerr := c.do(ctx, call{op: "balance", method: http.MethodGet, path: PathBalance, query: url.Values{"currency": {"COP"}}})
	if rerr != nil {
		return Balance{}, rerr
	}
	payload := unwrap(raw)
	var bw balanceWire
	if err := json.Unmarshal(payload, &bw); err != nil {
		return Balance{}, &rail.Error{Rail: rail.SmartFastPay, Op: "balance", HTTPStatus: http.StatusOK,
			Message: "unreadable balance", Class: rail.Retryable, Err: err}
	}
	b := Balance{Currency: bw.Currency, Raw: append(json.RawMessage(nil), payload...)}
	for _, a := range []*Amount{bw.Available, bw.AvailableBalance, bw.Balance} {
		if a != nil {
			b.AmountInCents, b.HasAmountField = int64(*a), true
			break
		}
	}
	return b, nil
}
