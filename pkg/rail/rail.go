// Package rail names what a payout provider ("rail") is to the pipeline,
// and the classes of its errors. The dispatcher and the tracker know rails
// only through this package; each provider has a package of its own (a
// client, and a simulator in a test sub-package) that implements it, and
// every implementation passes the one conformance suite in railtest.
//
// Two kinds of rails exist. A batch rail (Wompi) takes many payees in one
// POST under one idempotency key. A single-payout rail (SmartFastPay,
// WEpayout) takes one payee per POST and documents no idempotency: the
// dispatcher fans a batch out into single payouts, and never repeats a POST
// whose outcome is unknown before a lookup by our own id (the requestId)
// proves the provider holds nothing for it.
package rail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"
	_ "time/tzdata" // the rails' zones must resolve in scratch images with no zoneinfo

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Name is a rail's name in the contract: PayoutRequested.rail, RAIL_ROUTES,
// the rail label of metrics.
type Name string

// The rails of the product.
const (
	Wompi        Name = "wompi"
	SmartFastPay Name = "smartfastpay"
	WEpayout     Name = "wepayout"
)

// Names lists the rails in a stable order.
var Names = []Name{Wompi, SmartFastPay, WEpayout}

// Valid reports whether n is one of Names.
func (n Name) Valid() bool {
	for _, v := range Names {
		if v == n {
			return true
		}
	}
	return false
}

// Class says what a failed call means for the payout, and so what the
// caller may do next (Temporal's retryable and non-retryable error types,
// with the one distinction that matters for money: whether the call may
// have been applied).
type Class string

// The classes of a rail's errors.
const (
	// Retryable: the provider did not apply the call (a 5xx or 429 on a
	// read, a connection refused before anything was sent). Retry with
	// backoff.
	Retryable Class = "retryable"
	// OutcomeUnknown: a create may have been applied (a timeout, a reset
	// after the body was sent, a 5xx to a POST, an answer we cannot read).
	// Never repeat it before a lookup by our own id proves it absent.
	OutcomeUnknown Class = "outcome_unknown"
	// Rejected: the provider refused the payee as sent (validation). Final
	// for that payee: REJECTED with the provider's code.
	Rejected Class = "rejected"
	// Deferred: refused for now (a limit, the balance): try again later.
	Deferred Class = "deferred"
	// AlreadyExists: the provider already holds a payout with our id.
	AlreadyExists Class = "already_exists"
	// Unauthorized: our credentials, permissions or base URL are wrong (401,
	// 403, 404 on a create). No retry fixes it: alert, back off, never
	// reject the payee for it.
	Unauthorized Class = "unauthorized"
	// Permanent: anything else no retry fixes.
	Permanent Class = "permanent"
)

// Error is a failed call to a rail. Messages never carry personal data:
// clients mask what the provider echoes.
type Error struct {
	Rail       Name
	Op         string // "create", "get", "find", "list", "token", "balance"
	HTTPStatus int    // 0 when no answer was read
	Code       string // the provider's code, when it gives one
	Message    string // masked
	Class      Class
	// Items are our ids of the items a Rejected error refuses, when the
	// provider says which (a batch rail); empty: all of them.
	Items []string
	// Reason is the pipeline's reason for a refusal for now (Deferred):
	// INSUFFICIENT_BALANCE, BATCH_BUDGET or DAILY_LIMIT. A rail sets it
	// whenever the provider's answer names such a refusal, even when the
	// class says otherwise (an answer to a create that may have been
	// applied): the caller decides what to trust.
	Reason payout.Reason
	// Echo is our id as the answer named it in another case or with
	// spaces around it (a create answered so): the rail may keep our id
	// in that form and filter by that form only, so a lookup by our id
	// alone cannot prove the payout absent.
	Echo string
	Err  error // the transport or provider error, if any
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Rail, e.Op)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(": HTTP %d", e.HTTPStatus)
	}
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s + " (" + string(e.Class) + ")"
}

func (e *Error) Unwrap() error { return e.Err }

// Classifier is an error that knows its rail class: a provider client's
// own error type (wompi.Error) implements it, so that ClassOf reads it
// without the client wrapping every error in a *Error.
type Classifier interface {
	error
	RailClass() Class
}

// ClassOf returns the class of err: the Class of the first *Error in its
// chain, else the RailClass of the first Classifier, OutcomeUnknown for a
// context deadline (a call that may have landed), and Retryable for
// anything else.
func ClassOf(err error) Class {
	var re *Error
	if errors.As(err, &re) {
		return re.Class
	}
	var c Classifier
	if errors.As(err, &c) {
		return c.RailClass()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return OutcomeUnknown
	}
	return Retryable
}

// Payee is who a single payout pays: the fields of PayoutRequested's
// beneficiary that the single-payout rails use.
type Payee struct {
	Name, Email, Phone   string
	LegalIDType, LegalID string // CC, NIT, ...; CPF, CNPJ
	CustomerID           string // SmartFastPay customer_id
	PixKey               string // WEpayout PIX
	BankCode             string
	Branch, BranchDigit  string
	AccountNumber        string
	AccountDigit         string
	AccountType          string // AHORROS, CORRIENTE, ...
}

// PayoutRequest is one single payout. ID is our requestId: the provider's
// transaction.id (SmartFastPay) or invoice (WEpayout), and what Find looks
// up.
type PayoutRequest struct {
	ID            string
	AmountInCents int64
	Currency      string
	Payee         Payee
	CallbackURL   string
	Description   string
}

// Payout is a provider's record of a single payout, mapped.
type Payout struct {
	ProviderID     string        // the provider's id
	ID             string        // our id (requestId), as the provider holds it
	Status         payout.Status // mapped; "" while the provider status maps to nothing known
	ProviderStatus string        // as the provider says it
	Reason         string        // a reason code for FAILED and CANCELLED, e.g. WEPAYOUT_5
	ReasonMessage  string        // the provider's words on Reason, when it gives them (a batch rail's)
	AmountInCents  int64
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ListFilter narrows a listing. Zero fields do not filter.
type ListFilter struct {
	ID         string // our id
	From, To   time.Time
	ProviderID string
	// Frozen: nothing adds a payout to the listing while it is walked (a
	// recovery's rebuild, while no dispatcher posts). A rail whose pages
	// announce a total may then refuse, retryably, a page announcing more
	// than an earlier page: that page came from a copy behind, and in a
	// listing newest first the newest payout it lacked is on no page read.
	Frozen bool
}

// SinglePayouts is a single-payout rail's client: what the dispatcher and
// the tracker need of it.
type SinglePayouts interface {
	// Rail names the rail.
	Rail() Name
	// Create sends one payout. Its error's class says whether it may have
	// been applied (OutcomeUnknown): then it must not be sent again before
	// Find proves it absent.
	Create(ctx context.Context, r PayoutRequest) (Payout, error)
	// Get reads one payout by the provider's id.
	Get(ctx context.Context, providerID string) (Payout, error)
	// Find returns every payout the provider holds under our id (none: it
	// is absent; more than one: a double payment someone else made).
	Find(ctx context.Context, id string) ([]Payout, error)
	// List walks the payouts the filter selects, every page.
	List(ctx context.Context, f ListFilter) iter.Seq2[Payout, error]
}

// ManyFinder is a single-payout rail that can look up many of our ids in
// one call (SmartFastPay lists payouts by a comma list of our ids).
// FindMany answers for each id exactly what Find would (every payout the
// provider holds under that id; an id absent from the map is absent), for
// at most MaxFindMany ids. The dispatcher looks a group of payees up with
// one call just before posting those of them it proved absent, instead of
// one lookup per payee.
type ManyFinder interface {
	FindMany(ctx context.Context, ids []string) (map[string][]Payout, error)
	// MaxFindMany is the most ids one FindMany takes.
	MaxFindMany() int
}

// Currency returns the one currency a rail pays in (the requests' ISO 4217
// code): COP for Wompi and SmartFastPay, BRL for WEpayout. A batch carries
// no currency of its own: its rail's is its requests'.
func Currency(n Name) string {
	if n == WEpayout {
		return "BRL"
	}
	return "COP"
}

// Location returns the business-day time zone of a rail: budgets count in
// that zone's days. Wompi and SmartFastPay (Colombia) count in
// America/Bogota; WEpayout (Brazil) in America/Sao_Paulo.
func Location(n Name) *time.Location {
	if n == WEpayout {
		return saoPaulo
	}
	return bogota
}

var (
	// bogota is America/Bogota (UTC-5, no daylight saving). Wompi's daily
	// limits and "at least the next day" rule are counted in Bogota
	// calendar days [ours: Wompi does not publish the zone; Colombia has
	// one].
	bogota   = mustLoad("America/Bogota", -5)
	saoPaulo = mustLoad("America/Sao_Paulo", -3)
)

// mustLoad loads a zone from the tz database embedded by time/tzdata, so
// it resolves in scratch images with no zoneinfo.
func mustLoad(name string, offsetHours int) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		// Neither zone has DST today (Colombia since 1993, Brazil since
		// 2019): the fixed offset is exact for current dates.
		return time.FixedZone(name, offsetHours*60*60)
	}
	return l
}

// HandOffID is the id under which the dispatcher hands a single payout to
// the tracker (pkg/submitted's payout id, with one transaction whose id is
// the provider's): the rail's name, a colon, and the provider's id. Wompi's
// payouts keep their own id (a UUID: no colon).
func HandOffID(n Name, providerID string) string { return string(n) + ":" + providerID }

// ParseHandOffID splits a HandOffID. ok is false for anything else (a Wompi
// payout id, or a rail name the contract does not know).
func ParseHandOffID(id string) (n Name, providerID string, ok bool) {
	name, pid, found := strings.Cut(id, ":")
	if !found || pid == "" || !Name(name).Valid() || Name(name) == Wompi {
		return "", "", false
	}
	return Name(name), pid, true
}

// PayeeOf maps a request's beneficiary to a single payout's payee.
func PayeeOf(b *payout.Beneficiary) Payee {
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	return Payee{
		Name: b.Name, Email: b.Email, Phone: deref(b.Phone),
		LegalIDType: string(b.LegalIDType), LegalID: b.LegalID,
		PixKey: deref(b.PixKey), BankCode: b.BankCode,
		Branch: deref(b.Branch), BranchDigit: deref(b.BranchDigit),
		AccountNumber: b.AccountNumber, AccountDigit: deref(b.AccountDigit), AccountType: string(b.AccountType),
	}
}

// ListPageRetries is how many more times a single-payout client asks for
// a page of a listing whose GET failed retryably [ours], and
// ListPageBackoff the first wait, doubled each time. A listing walks
// pages one by one and stops at its first error, so without them one
// failed page of thousands (a recovery's rebuild over the dedupe window)
// would end the whole walk.
const (
	ListPageRetries = 4
	ListPageBackoff = 100 * time.Millisecond
)

// ReadPage runs read, one page's GET, and repeats it up to ListPageRetries
// times, with backoff, while it fails with class Retryable or
// OutcomeUnknown (a GET changes nothing), but not a 429, and ctx lives.
func ReadPage[T any](ctx context.Context, read func() (T, error)) (T, error) {
	wait := ListPageBackoff
	for try := 0; ; try++ {
		v, err := read()
		if err == nil || try >= ListPageRetries || ctx.Err() != nil {
			return v, err
		}
		if c := ClassOf(err); c != Retryable && c != OutcomeUnknown {
			return v, err
		}
		// A 429 is the provider's rate limit: asking again at once would
		// only spend calls the shared limit did not grant.
		if re := (*Error)(nil); errors.As(err, &re) && re.HTTPStatus == http.StatusTooManyRequests {
			return v, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait *= 2
	}
}

// ReadBody reads an answer's body, at most limit bytes (what io.ReadAll of
// an io.LimitReader returns), into one buffer sized by the answer's
// Content-Length when it announces one within the limit: a listing page of
// hundreds of kilobytes is then read without the doubling copies (and
// their zeroing) of io.ReadAll.
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	r := io.LimitReader(resp.Body, limit)
	n := resp.ContentLength
	if n < 0 || n > limit {
		return io.ReadAll(r)
	}
	// One byte more, so that the read which meets the end needs no growth.
	b := make([]byte, 0, n+1)
	for {
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// NoRedirects returns a copy of hc that hands a 3xx answer back instead of
// following it. No rail's API redirects [ours]: following one would turn a
// create into a GET (301 to 303), or send its body, the payees' data, to
// wherever Location points (307, 308). A 3xx means the base URL is wrong:
// every rail's client classes it Unauthorized.
func NoRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}
