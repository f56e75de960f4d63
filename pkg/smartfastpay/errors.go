package smartfastpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Sentinel errors. The first two are wrapped in a *rail.Error returned
// before anything is sent; the webhook ones are returned by
// Webhooks.Verify and Webhooks.Parse.
var (
	// ErrInvalidRequest: an argument is unusable (our id not 1-64 of
	// [A-Za-z0-9-], an empty provider id, no callback URL). Class
	// Permanent: it is our bug, not the payee's.
	ErrInvalidRequest = errors.New("smartfastpay: invalid request")
	// ErrInvalidPayout: the payee cannot be paid by this rail as asked
	// (not COP, an amount under 1 cent). Class Rejected.
	ErrInvalidPayout = errors.New("smartfastpay: payout not payable")
	// ErrSignature: a callback's signature is missing, malformed or wrong.
	ErrSignature = errors.New("smartfastpay: invalid callback signature")
	// ErrStale: a callback's t is older than Config.WebhookMaxAge.
	ErrStale = errors.New("smartfastpay: callback too old")
	// ErrMalformedWebhook: a verified callback's body is not the
	// documented shape.
	ErrMalformedWebhook = errors.New("smartfastpay: malformed callback")
	// ErrNoPayout: a verified callback names only elements of another
	// type than "payout" (the docs show payouts only): nothing of ours to
	// track, and nothing a retry of it would change.
	ErrNoPayout = errors.New("smartfastpay: callback without a payout")
)

// errorBody reads both error shapes an SDK knows [sdk]:
// {"requestId", "moreInformation"} and {"requestId", "status", "payload"}.
type errorBody struct {
	RequestID       string          `json:"requestId"`
	MoreInformation json.RawMessage `json:"moreInformation"`
	Message         json.RawMessage `json:"message"`
	Payload         json.RawMessage `json:"payload"`
	Code            json.RawMessage `json:"code"`
}

// providerMessage returns the masked message and code of an error answer:
// the values of pii (what the call sent of the payee: a name, which no
// heuristic tells, among them) first, then Mask.
func providerMessage(raw []byte, pii []string) (msg, code string) {
	msg, code = providerText(raw)
	return maskSent(msg, code, pii)
}

// providerText returns the message and code of an error answer as the
// provider wrote them, unmasked: what classifies the answer (idTaken)
// reads, never what is kept or logged.
func providerText(raw []byte) (msg, code string) {
	t := bytes.TrimSpace(raw)
	var eb errorBody
	if len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &eb) == nil {
		for _, m := range []json.RawMessage{eb.MoreInformation, eb.Message, eb.Payload} {
			if s := rawText(m); s != "" {
				msg = s
				break
			}
		}
		code = rawText(eb.Code)
	} else {
		msg = string(t)
	}
	return msg, code
}

// maskSent masks a provider's message and code: the values of pii first,
// then Mask.
func maskSent(msg, code string, pii []string) (string, string) {
	for _, v := range pii {
		if v = strings.TrimSpace(v); len(v) >= 3 {
			// Any case: a provider may quote a name in capitals.
			re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(v))
			msg = re.ReplaceAllLiteralString(msg, "****")
			code = re.ReplaceAllLiteralString(code, "****")
		}
	}
	return Mask(msg), Mask(code)
}

// rawText renders a JSON value as text: a string as itself, anything else
// compactly.
func rawText(m json.RawMessage) string {
	m = bytes.TrimSpace(m)
	if len(m) == 0 || string(m) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, m) == nil {
		return b.String()
	}
	return string(m)
}

var (
	emailRE  = regexp.MustCompile(`[^\s"'<>@,;:]+@[^\s"'<>@,;:]+`)
	digitsRE = regexp.MustCompile(`\+?\d[\d .-]{4,}\d`)
)

// maxMessage bounds a kept provider message.
const maxMessage = 200

// Mask hides personal data a provider may echo in a message: e-mail
// addresses become [email], runs of six or more digits (documents, phones,
// account numbers; separators allowed) become [digits]; the result is cut
// to 200 bytes. Amounts such as 98000.00 are digits too and are hidden: a
// message is for humans, the amount is in our own record.
func Mask(s string) string {
	if s == "" {
		return s
	}
	s = emailRE.ReplaceAllString(s, "[email]")
	s = digitsRE.ReplaceAllStringFunc(s, func(m string) string {
		n := 0
		for i := 0; i < len(m); i++ {
			if m[i] >= '0' && m[i] <= '9' {
				n++
			}
		}
		if n >= 6 {
			return "[digits]"
		}
		return m
	})
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	// The message may become an event's reasonMessage, an Avro string:
	// UTF-8 only, whatever bytes the provider answered.
	return strings.ToValidUTF8(s, "")
}

// transportError classifies a failure to get an answer. On a create, only
// a failure to connect proves nothing was sent (Retryable); anything later
// (a timeout, a reset, a cancelled context) is OutcomeUnknown. A read is
// Retryable. The URL is stripped: its query may carry our ids.
func transportError(op string, create bool, err error) *rail.Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	cl := rail.Retryable
	if create && !dialFailed(err) {
		cl = rail.OutcomeUnknown
	}
	return &rail.Error{Rail: rail.SmartFastPay, Op: op, Class: cl, Err: err}
}

// dialFailed reports whether err is a failure to open the connection: no
// byte of the request left.
func dialFailed(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func invalid(op string, sentinel error, msg string) *rail.Error {
	cl := rail.Permanent
	if sentinel == ErrInvalidPayout {
		cl = rail.Rejected
	}
	return &rail.Error{Rail: rail.SmartFastPay, Op: op, Class: cl, Message: msg, Err: sentinel}
}
