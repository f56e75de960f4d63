package wepayout

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// maxWebhookBytes bounds a webhook body the parser reads.
const maxWebhookBytes = 1 << 20

// maxWebhookSeparators bounds the commas, colons and opening brackets
// outside strings of a webhook body, that is about its number of values. A
// documented event has about 15. The body is decoded before its signature
// can be checked, and encoding/json lets a key repeat (in any case), each
// repeat of "id":1 decoded anew: an unsigned MiB of them took 24 MB.
const maxWebhookSeparators = 256

// Webhook is a payment event WEpayout POSTs to a payment's notification_url
// [doc]. It carries neither the amount nor the currency.
type Webhook struct {
	ID           ID            `json:"id"`
	Invoice      string        `json:"invoice"`
	EndToEnd     string        `json:"end_to_end"`
	Status       StatusRef     `json:"status"`
	UpdatedAt    Time          `json:"updated_at"`
	StatusDetail *StatusDetail `json:"status_detail,omitempty"`
}

// Payout maps the event to the seam's Payout (no amount: the body has
// none). An unknown status id maps to Status "": never final.
func (w *Webhook) Payout() rail.Payout {
	st, reason, _ := MapStatus(w.Status.ID, w.StatusDetail)
	return rail.Payout{ProviderID: string(w.ID), ID: w.Invoice, Status: st, ProviderStatus: strconv.Itoa(w.Status.ID),
		Reason: reason, UpdatedAt: w.UpdatedAt.Time}
}

// KnownStatus reports whether MapStatus knows the event's status id; the
// tracker counts the others.
func (w *Webhook) KnownStatus() bool {
	_, _, ok := MapStatus(w.Status.ID, w.StatusDetail)
	return ok
}

// ParseWebhook decodes a webhook body without verifying it. It requires an
// id, an invoice and a status id (ErrMalformedWebhook).
func ParseWebhook(body []byte) (*Webhook, error) {
	if len(body) > maxWebhookBytes {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrMalformedWebhook, maxWebhookBytes)
	}
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedWebhook)
	}
	// JSON between systems is UTF-8 (RFC 8259 §8.1). The body is read
	// before any signature can be checked, and encoding/json turns each
	// invalid byte of a string into a three-byte U+FFFD in a buffer grown
	// by doubling: an unsigned MiB of them took 11 MB.
	if !utf8.Valid(t) {
		return nil, fmt.Errorf("%w: the body is not UTF-8", ErrMalformedWebhook)
	}
	if n := separators(t); n > maxWebhookSeparators {
		return nil, fmt.Errorf("%w: more than %d values", ErrMalformedWebhook, maxWebhookSeparators)
	}
	var w Webhook
	if err := json.Unmarshal(t, &w); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedWebhook, maskText(err.Error(), nil))
	}
	// Blank is missing: an id of spaces names no payment (GetPayment
	// refuses it), and would be answered 503, retried by WEpayout for ever,
	// instead of 400.
	if strings.TrimSpace(string(w.ID)) == "" || strings.TrimSpace(w.Invoice) == "" || w.Status.ID == 0 {
		return nil, fmt.Errorf("%w: id, invoice and status.id are required", ErrMalformedWebhook)
	}
	return &w, nil
}

// separators counts the commas, colons and opening brackets of a JSON
// text outside its strings.
func separators(b []byte) int {
	n, in := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if in {
			switch c {
			case '\\':
				i++ // the escaped byte neither ends the string nor counts
			case '"':
				in = false
			}
			continue
		}
		switch c {
		case '"':
			in = true
		case ',', ':', '{', '[':
			n++
		}
	}
	return n
}

// WebhookSignature returns the hex signature WEpayout sends for a payment
// [doc]: SHA-256 (plain, not an HMAC) of invoice + currency + amount +
// apiKey, concatenated without separators; amount is the decimal string we
// sent ([ours]: FormatReais(amountInCents), "50.34").
func WebhookSignature(invoice, currency string, amountInCents int64, apiKey string) string {
	sum := sha256.Sum256([]byte(invoice + currency + signatureAmount(amountInCents) + apiKey))
	return hex.EncodeToString(sum[:])
}

// SignatureHeader returns the x-webhook-wp-signature value: "Bearer <hex>".
func SignatureHeader(invoice, currency string, amountInCents int64, apiKey string) string {
	return "Bearer " + WebhookSignature(invoice, currency, amountInCents, apiKey)
}

// VerifyWebhook checks a webhook against OUR record of the payout (rec: its
// ID, the invoice we sent; Currency, "BRL" when empty; AmountInCents) and
// parses it. The header x-webhook-wp-signature must be "Bearer <hex>" (the
// scheme is optional, any case) with hex = WebhookSignature of our record,
// compared case-insensitively in constant time; the body's invoice must be
// rec.ID. Errors: ErrInvalidSignature, ErrMalformedWebhook (wrapped).
//
// The signature covers the invoice, currency, amount and key only: nothing
// else in the body (id, status, status_detail) is authenticated by it. A
// replayed genuine webhook with an altered status verifies. ConfirmWebhook
// closes that gap with a read.
func VerifyWebhook(h http.Header, body []byte, rec rail.PayoutRequest, apiKey string) (*Webhook, error) {
	if apiKey == "" {
		return nil, fmt.Errorf("%w: no API key configured", ErrInvalidSignature)
	}
	if rec.ID == "" {
		return nil, fmt.Errorf("%w: no record of the payout", ErrInvalidSignature)
	}
	got := strings.TrimSpace(h.Get(HeaderSignature))
	if len(got) >= 7 && strings.EqualFold(got[:7], "bearer ") {
		got = strings.TrimSpace(got[7:])
	}
	if got == "" {
		return nil, fmt.Errorf("%w: no %s header", ErrInvalidSignature, HeaderSignature)
	}
	cur := rec.Currency
	if cur == "" {
		cur = CurrencyBRL
	}
	want := WebhookSignature(rec.ID, cur, rec.AmountInCents, apiKey)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) != 1 {
		return nil, ErrInvalidSignature
	}
	w, err := ParseWebhook(body)
	if err != nil {
		return nil, err
	}
	if w.Invoice != rec.ID {
		return nil, fmt.Errorf("%w: the body's invoice is not the record's", ErrInvalidSignature)
	}
	return w, nil
}

// ConfirmWebhook reads the payment a verified webhook names and returns
// WEpayout's own view of it, which is what the tracker should emit: the
// signature authenticates only the invoice (and our amount), so the id and
// status of the body are confirmed by GET /v2/payout/payments/{id}. A
// payment that does not exist (404), or whose id of ours is not the
// webhook's invoice, is ErrInvalidSignature (wrapped): answer 401. Any
// other failure is the read's *rail.Error (Retryable: answer 5xx so that
// WEpayout retries). The status returned may be later than the body's.
func (c *Client) ConfirmWebhook(ctx context.Context, w *Webhook) (rail.Payout, error) {
	p, err := c.GetPayment(ctx, string(w.ID))
	if err != nil {
		var re *rail.Error
		if errors.As(err, &re) && re.HTTPStatus == http.StatusNotFound {
			return rail.Payout{}, fmt.Errorf("%w: no payment %s", ErrInvalidSignature, w.ID)
		}
		return rail.Payout{}, err
	}
	if p.OurID() != w.Invoice {
		return rail.Payout{}, fmt.Errorf("%w: payment %s is not the webhook's invoice", ErrInvalidSignature, w.ID)
	}
	return c.payout(p), nil
}
