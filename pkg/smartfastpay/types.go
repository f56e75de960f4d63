package smartfastpay

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Text is a value the API may send as a JSON string or a number (ids):
// it keeps the text either way.
type Text string

// UnmarshalJSON implements json.Unmarshaler.
func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*t = Text(n.String())
	return nil
}

// Time reads the API's timestamps leniently: RFC 3339, or "2006-01-02
// 15:04:05" with or without a T, taken as UTC [ours: the format is not
// published]. Anything else reads as the zero time rather than failing the
// whole answer.
type Time struct{ time.Time }

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999"}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		var ms int64
		if json.Unmarshal(b, &ms) == nil && ms > 0 {
			t.Time = time.UnixMilli(ms).UTC()
		}
		return nil
	}
	for _, l := range timeLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return nil
}

// CreateRequest is the body of POST /v1/payout [seed].
type CreateRequest struct {
	CustomerID  string      `json:"customer_id"`
	Branch      string      `json:"branch,omitempty"`
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Document    string      `json:"document"`
	Phone       string      `json:"phone"`
	Amount      Amount      `json:"amount"`
	Currency    string      `json:"currency"`
	Country     string      `json:"country"`
	Callback    string      `json:"callback"`
	Transaction Transaction `json:"transaction"`
}

// Transaction carries our id [seed].
type Transaction struct {
	ID string `json:"id"`
}

// CreateResult is the answer to a create [seed]: the amounts come as
// decimal strings or numbers.
type CreateResult struct {
	ID       Text    `json:"id"`
	Status   string  `json:"status"`
	Total    *Amount `json:"total"`
	Subtotal *Amount `json:"subtotal"`
	Exchange Text    `json:"exchange"` // a rate, not money: kept as text
	Fee      *Amount `json:"fee"`
}

// PayoutRecord is a payout as GET /v1/payout/{id} and the listing return
// it [seed].
type PayoutRecord struct {
	ID            Text   `json:"id"`
	CustomerID    string `json:"customer_id"` // personal data: never log it
	TransactionID Text   `json:"transaction_id"`
	Amount        Amount `json:"amount"`
	Currency      string `json:"currency"`
	Status        string `json:"status"`
	CreatedAt     Time   `json:"created_at"`
	UpdatedAt     Time   `json:"updated_at"`
}

func (r PayoutRecord) payout(status func(id, s string) rail.Payout) rail.Payout {
	p := status(string(r.ID), r.Status)
	p.ID = string(r.TransactionID)
	p.AmountInCents = int64(r.Amount)
	p.CreatedAt, p.UpdatedAt = r.CreatedAt.Time, r.UpdatedAt.Time
	return p
}

// Balance is the answer of GET /balance [sdk; its fields are not
// published, so the client reads balance, available or available_balance].
type Balance struct {
	Currency       string
	AmountInCents  int64
	Raw            json.RawMessage
	HasAmountField bool
}

type balanceWire struct {
	Currency         string  `json:"currency"`
	Balance          *Amount `json:"balance"`
	Available        *Amount `json:"available"`
	AvailableBalance *Amount `json:"available_balance"`
}

type tokenWire struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

func (t tokenWire) lifetime() time.Duration {
	s := string(bytes.Trim(bytes.TrimSpace(t.ExpiresIn), `"`))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
