package wepayout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Wire values [doc].
const (
	PaymentMethodPIX = "PIX"
	CurrencyBRL      = "BRL"
	CountryBR        = "BR"
	DocumentCPF      = "CPF"
	DocumentCNPJ     = "CNPJ"
	AccountChecking  = "checking"
	AccountSavings   = "savings"
	// MaxNameLength bounds beneficiary.name [doc].
	MaxNameLength = 100
	// MaxPerPage bounds the listing's per_page [doc].
	MaxPerPage = 100
)

// Status ids [seed, doc]. 7 (Awaiting) appears in the create example only:
// the published table is incomplete.
const (
	StatusCreated    = 1
	StatusProcessing = 2
	StatusPaid       = 3
	StatusFailed     = 4
	StatusRejected   = 5
	StatusCancelled  = 6
	StatusAwaiting   = 7
)

// Document is beneficiary.document.
type Document struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

// Beneficiary is who a payment pays.
type Beneficiary struct {
	Name     string   `json:"name"`
	Document Document `json:"document"`
}

// PIX carries the payee's PIX key.
type PIX struct {
	Key string `json:"pix_key"`
}

// CreatePaymentRequest is the body of POST /v2/payout/payments [doc]. Send
// exactly one of PIX and the bank fields. Amount is in cents and goes on
// the wire as a decimal reais number.
type CreatePaymentRequest struct {
	PaymentMethod   string       `json:"payment_method"`
	Currency        string       `json:"currency"`
	Country         string       `json:"country"`
	Amount          Cents        `json:"amount"`
	Invoice         string       `json:"invoice"`
	Beneficiary     Beneficiary  `json:"beneficiary"`
	PIX             *PIX         `json:"pix,omitempty"`
	BankCode        string       `json:"bank_code,omitempty"`
	BankBranch      string       `json:"bank_branch,omitempty"`
	BankBranchDigit string       `json:"bank_branch_digit,omitempty"`
	Account         string       `json:"account,omitempty"`
	AccountDigit    string       `json:"account_digit,omitempty"`
	AccountType     string       `json:"account_type,omitempty"`
	MerchantID      *json.Number `json:"merchant_id,omitempty"`
	Description     string       `json:"description,omitempty"`
	NotificationURL string       `json:"notification_url,omitempty"`
}

// pii lists the personal values of r, to mask wherever they may be echoed.
func (r *CreatePaymentRequest) pii() []string {
	out := []string{r.Beneficiary.Document.Number, r.Account, r.Beneficiary.Name}
	if r.PIX != nil {
		out = append(out, r.PIX.Key)
	}
	return out
}

// StatusRef is a payment's status {id, name}.
type StatusRef struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// UnmarshalJSON accepts id as a number or a numeric string.
func (s *StatusRef) UnmarshalJSON(b []byte) error {
	var w struct {
		ID   json.RawMessage `json:"id"`
		Name string          `json:"name"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	s.Name = w.Name
	id := strings.Trim(string(bytes.TrimSpace(w.ID)), `"`)
	if id == "" || id == "null" {
		s.ID = 0
		return nil
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return fmt.Errorf("status id %q is not an integer", id)
	}
	s.ID = n
	return nil
}

// StatusDetail explains some cancellations [doc], e.g. {WE0001, ...}.
type StatusDetail struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// ID is a provider id: a JSON integer [doc], accepted as a string too.
type ID string

// UnmarshalJSON implements json.Unmarshaler.
func (i *ID) UnmarshalJSON(b []byte) error {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || string(t) == "null" {
		*i = ""
		return nil
	}
	if t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return err
		}
		*i = ID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(t, &n); err != nil {
		return err
	}
	*i = ID(n.String())
	return nil
}

// Time reads every time form WEpayout answers: RFC 3339 (GET's
// "2024-06-13T10:00:00.000000Z" [seed]) and the zone-less
// "2024-09-25 15:55:18" of webhooks [doc], read in SaoPaulo [ours].
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		if string(bytes.TrimSpace(b)) == "null" {
			t.Time = time.Time{}
			return nil
		}
		return err
	}
	v, err := ParseTime(s)
	t.Time = v
	return err
}

// ParseTime parses a WEpayout time (see Time). "" is the zero time.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return v, nil
	}
	for _, l := range webhookTimeLayouts {
		if v, err := time.ParseInLocation(l, s, SaoPaulo); err == nil {
			return v, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is neither RFC 3339 nor %q", s, webhookTimeLayouts[0])
}

// Payment is WEpayout's record of a payment, in the union of the create
// answer [doc] and the GET answer [seed]. The create answer names our id
// invoice, GET external_id; OurID returns whichever is set.
type Payment struct {
	ID              ID            `json:"id"`
	MerchantID      ID            `json:"merchant_id"`
	Invoice         string        `json:"invoice"`
	ExternalID      string        `json:"external_id"`
	Amount          Cents         `json:"amount"`
	Currency        string        `json:"currency"`
	Country         string        `json:"country"`
	Description     string        `json:"description"`
	Status          StatusRef     `json:"status"`
	StatusDetail    *StatusDetail `json:"status_detail,omitempty"`
	NotificationURL string        `json:"notification_url"`
	CreatedAt       Time          `json:"created_at"`
	UpdatedAt       Time          `json:"updated_at"`
}

// OurID returns our requestId as the payment carries it.
func (p *Payment) OurID() string {
	if p.Invoice != "" {
		return p.Invoice
	}
	return p.ExternalID
}

// ListQuery filters GET /v2/payout/payments [doc]. Zero fields do not
// filter. The dates are days (YYYY-MM-DD) in SaoPaulo.
type ListQuery struct {
	ExternalID     string
	StatusID       int
	CreatedAtStart time.Time
	CreatedAtEnd   time.Time
	Page, PerPage  int
	// Frozen: nothing adds a payment while the listing is walked
	// (rail.ListFilter.Frozen) [ours]: walk refuses a page announcing more
	// payments or pages than an earlier page too.
	Frozen bool
}

// PageMeta is the listing's meta [doc].
type PageMeta struct {
	CurrentPage int `json:"current_page"`
	LastPage    int `json:"last_page"`
	PerPage     int `json:"per_page"`
	Total       int `json:"total"`
}

// PaymentPage is one page of the listing.
type PaymentPage struct {
	Data []Payment `json:"data"`
	Meta *PageMeta `json:"meta"`
}

// Balance is GET /v2/account/{merchantId}/balance [doc], in cents. A
// currency WEpayout does not hold answers zeros.
type Balance struct {
	Balance          Cents `json:"balance"`
	AvailableBalance Cents `json:"available_balance"`
	ReserveBalance   Cents `json:"reserve_balance"`
	Fee              Cents `json:"fee"`
}
