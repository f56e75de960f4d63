package smartfastpay

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Webhooks verifies and reads SmartFastPay's callbacks [doc]: a POST to the
// payout's callback URL with the header
//
//	SmartFastPay-Signature: t=<unix ms>,v1=<hex>
//
// where v1 is the hex HMAC-SHA256 of "<t>.<raw body>" keyed with the webhook
// secret. Schemes other than v1 are ignored; several v1 values are allowed
// (any one matching verifies, as during a secret rotation).
type Webhooks struct {
	// Secret is the webhook secret. Empty refuses every callback.
	Secret string
	// MaxAge, when positive, refuses a callback whose t is older (or more
	// than MaxAge in the future). Zero, the default, sets no limit [ours].
	MaxAge time.Duration
	// Now is the clock of MaxAge. Default time.Now.
	Now func() time.Time
}

// Callback is a verified callback's body [doc]: data is an array.
type Callback struct {
	RequestID string           `json:"requestId"`
	Data      []CallbackPayout `json:"data"`
	Raw       json.RawMessage  `json:"-"`
	Signed    time.Time        `json:"-"` // t of the signature
}

// CallbackPayout is one element of a callback's data [doc]. Status is the
// transaction-level status (open, pending, paid, canceled); PayoutStatus
// the payout's, the one that maps to ours.
type CallbackPayout struct {
	ID            Text   `json:"id"`
	CustomerID    string `json:"customer_id"` // personal data: never log it
	TransactionID Text   `json:"transaction_id"`
	Amount        Amount `json:"amount"`
	Status        string `json:"status"`
	Type          string `json:"type"`
	PayoutStatus  string `json:"payout_status"`
}

// Payout maps the element: our id, the provider id, MapStatus of
// payout_status (unknown: "", never final), the amount.
func (p CallbackPayout) Payout() rail.Payout {
	return rail.Payout{ProviderID: string(p.ID), ID: string(p.TransactionID), Status: MapStatus(p.PayoutStatus),
		ProviderStatus: p.PayoutStatus, AmountInCents: int64(p.Amount)}
}

// Sign returns the SmartFastPay-Signature header value for body signed at
// t with secret. The simulator signs with it.
func Sign(secret string, t time.Time, body []byte) string {
	ms := strconv.FormatInt(t.UnixMilli(), 10)
	return "t=" + ms + ",v1=" + hex.EncodeToString(mac(secret, ms, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks the signature header of body. It returns the signing time,
// or an error wrapping ErrSignature or ErrStale.
func (w Webhooks) Verify(header string, body []byte) (time.Time, error) {
	if w.Secret == "" {
		return time.Time{}, fmt.Errorf("%w: no webhook secret configured", ErrSignature)
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if ts != "" {
				return time.Time{}, fmt.Errorf("%w: more than one t", ErrSignature)
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return time.Time{}, fmt.Errorf("%w: v1 is not a hex SHA-256", ErrSignature)
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return time.Time{}, fmt.Errorf("%w: missing t or v1", ErrSignature)
	}
	if len(ts) > 18 || !allDigits(ts) {
		return time.Time{}, fmt.Errorf("%w: t is not unix milliseconds", ErrSignature)
	}
	ms, _ := strconv.ParseInt(ts, 10, 64)
	want := mac(w.Secret, ts, body)
	ok := false
	for _, s := range sigs {
		// hmac.Equal compares in constant time.
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return time.Time{}, ErrSignature
	}
	at := time.UnixMilli(ms)
	if w.MaxAge > 0 {
		now := time.Now
		if w.Now != nil {
			now = w.Now
		}
		if d := now().Sub(at); d > w.MaxAge || d < -w.MaxAge {
			return time.Time{}, fmt.Errorf("%w: signed %s away from now", ErrStale, d.Round(time.Second))
		}
	}
	return at, nil
}

// Parse verifies a callback (h carries HeaderSignature) and decodes its
// body. Elements whose type is neither "payout" nor empty are dropped;
// a callback of such elements only is ErrNoPayout.
func (w Webhooks) Parse(h http.Header, body []byte) (*Callback, error) {
	at, err := w.Verify(h.Get(HeaderSignature), body)
	if err != nil {
		return nil, err
	}
	cb, err := ParseCallback(body)
	if err != nil {
		return nil, err
	}
	cb.Signed = at
	return cb, nil
}

// ParseCallback decodes a callback body WITHOUT verifying it: use
// Webhooks.Parse on anything received.
func ParseCallback(body []byte) (*Callback, error) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedWebhook)
	}
	var wire struct {
		RequestID Text            `json:"requestId"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(t, &wire); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedWebhook, Mask(err.Error()))
	}
	cb := Callback{RequestID: string(wire.RequestID)}
	d := bytes.TrimSpace(wire.Data)
	var err error
	switch {
	case len(d) > 0 && d[0] == '[':
		err = json.Unmarshal(d, &cb.Data)
	case len(d) > 0 && d[0] == '{':
		// The docs say an array; a lone object is read as one element.
		cb.Data = make([]CallbackPayout, 1)
		err = json.Unmarshal(d, &cb.Data[0])
	default:
		err = fmt.Errorf("data is not an array")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedWebhook, Mask(err.Error()))
	}
	kept, others := cb.Data[:0], 0
	for _, d := range cb.Data {
		if d.Type != "" && !strings.EqualFold(d.Type, "payout") {
			others++
			continue
		}
		if d.ID == "" || d.TransactionID == "" {
			return nil, fmt.Errorf("%w: an element without id or transaction_id", ErrMalformedWebhook)
		}
		kept = append(kept, d)
	}
	if len(kept) == 0 {
		if others > 0 {
			return nil, fmt.Errorf("%w: %d elements, none of type payout", ErrNoPayout, others)
		}
		return nil, fmt.Errorf("%w: no payout in data", ErrMalformedWebhook)
	}
	cb.Data = kept
	cb.Raw = append(json.RawMessage(nil), t...)
	return &cb, nil
}
