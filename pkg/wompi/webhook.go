package wompi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event names [doc].
const (
	EventTransactionUpdated = "transaction.updated"
	EventPayoutUpdated      = "payout.updated"
)

// Signature is a webhook's signature block [doc]: the data properties the
// checksum covers, in order, and the checksum.
type Signature struct {
	Properties []string `json:"properties"`
	Checksum   string   `json:"checksum"`
}

// Event is a verified webhook. Transaction is set for transaction.updated,
// Payout for payout.updated; other events keep only Data.
type Event struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Signature Signature       `json:"signature"`
	// Timestamp is in unix milliseconds.
	Timestamp int64 `json:"timestamp"`
	SentAt    Time  `json:"sentAt"`

	Transaction *TransactionEvent `json:"-"`
	Payout      *PayoutEvent      `json:"-"`
}

// EventPayee is the payee of a transaction.updated event [doc].
type EventPayee struct {
	Name          string `json:"name"`
	Document      string `json:"document"`
	Bank          string `json:"bank"`
	AccountType   string `json:"accountType"`
	AccountNumber string `json:"accountNumber"`
	Email         string `json:"email"`
}

// TransactionEvent is data.transaction of transaction.updated [doc]. It
// carries the transaction and payout ids but NO reference: map it back
// through a stored id mapping or PayoutTransaction.
type TransactionEvent struct {
	ID            string            `json:"id"`
	PayoutID      string            `json:"payoutId"`
	AmountInCents int64             `json:"amountInCents"`
	Status        TransactionStatus `json:"status"`
	Payee         EventPayee        `json:"payee"`
	FailureReason FailureReason     `json:"failureReason"`
	Currency      string            `json:"currency"`
	AppliedAt     Time              `json:"appliedAt"`
	CreatedAt     Time              `json:"createdAt"`
}

// PayoutEvent is data.payout of payout.updated [doc].
type PayoutEvent struct {
	ID                 string      `json:"id"`
	Reference          string      `json:"reference"`
	AmountInCents      int64       `json:"amountInCents"`
	PaymentType        string      `json:"paymentType"`
	Status             BatchStatus `json:"status"`
	TotalTransactions  int         `json:"totalTransactions"`
	Currency           string      `json:"currency"`
	DispersionDatetime string      `json:"dispersionDatetime,omitempty"`
	ApprovedAt         Time        `json:"approvedAt"`
	CreatedAt          Time        `json:"createdAt"`
}

// VerifyEvent checks a webhook body's checksum [doc]: the values named in
// signature.properties, in order, looked up under data (dotted paths;
// numbers rendered as JSON numbers without exponent), concatenated, then the
// timestamp, then secret; SHA-256 hex; compared in constant time with
// headerChecksum (the X-Event-Checksum header) when not empty, else with
// signature.checksum. It returns nil, ErrInvalidChecksum or ErrMalformedEvent
// (wrapped).
func VerifyEvent(body []byte, headerChecksum, secret string) error {
	_, err := verify(body, headerChecksum, secret)
	return err
}

// ParseEvent verifies body like VerifyEvent and decodes it.
func ParseEvent(body []byte, headerChecksum, secret string) (*Event, error) {
	if _, err := verify(body, headerChecksum, secret); err != nil {
		return nil, err
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	switch ev.Event {
	case EventTransactionUpdated:
		var d struct {
			Transaction *TransactionEvent `json:"transaction"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Transaction == nil {
			return nil, fmt.Errorf("%w: %s without data.transaction", ErrMalformedEvent, ev.Event)
		}
		ev.Transaction = d.Transaction
	case EventPayoutUpdated:
		var d struct {
			Payout *PayoutEvent `json:"payout"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.Payout == nil {
			return nil, fmt.Errorf("%w: %s without data.payout", ErrMalformedEvent, ev.Event)
		}
		ev.Payout = d.Payout
	}
	return &ev, nil
}

type rawEvent struct {
	Data      json.RawMessage `json:"data"`
	Signature Signature       `json:"signature"`
	Timestamp json.Number     `json:"timestamp"`
}

func verify(body []byte, headerChecksum, secret string) (*rawEvent, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no events secret configured", ErrInvalidChecksum)
	}
	var re rawEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&re); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEvent, err)
	}
	if len(re.Data) == 0 || len(re.Signature.Properties) == 0 || re.Timestamp == "" {
		return nil, fmt.Errorf("%w: missing data, signature.properties or timestamp", ErrMalformedEvent)
	}
	want := strings.TrimSpace(headerChecksum)
	if want == "" {
		want = re.Signature.Checksum
	}
	if want == "" {
		return nil, fmt.Errorf("%w: no checksum in header or body", ErrInvalidChecksum)
	}
	got, err := checksum(re.Data, re.Signature.Properties, renderNumber(re.Timestamp.String()), secret)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(want)), []byte(got)) != 1 {
		return nil, ErrInvalidChecksum
	}
	return &re, nil
}

// EventChecksum computes the checksum of an event whose data is the JSON
// object data (see VerifyEvent).
func EventChecksum(data []byte, properties []string, timestampMillis int64, secret string) (string, error) {
	return checksum(data, properties, strconv.FormatInt(timestampMillis, 10), secret)
}

func checksum(data []byte, properties []string, timestamp, secret string) (string, error) {
	var root any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return "", fmt.Errorf("%w: data: %v", ErrMalformedEvent, err)
	}
	var buf []byte
	for _, p := range properties {
		v := lookup(root, p)
		s, err := render(v)
		if err != nil {
			return "", fmt.Errorf("%w: property %q: %v", ErrMalformedEvent, p, err)
		}
		buf = append(buf, s...)
	}
	buf = append(buf, timestamp...)
	buf = append(buf, secret...)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// lookup walks a dotted path; a missing value is nil (rendered "").
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func render(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return renderNumber(x.String()), nil
	case bool:
		return strconv.FormatBool(x), nil
	default:
		b, err := json.Marshal(x)
		return string(b), err
	}
}

// renderNumber renders a JSON number literal without exponent or a
// needless fraction: 7.5e6 and 7500000.0 give 7500000.
func renderNumber(n string) string {
	if !strings.ContainsAny(n, ".eE") {
		return n
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return n
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// SignEvent builds a signed webhook body, as Wompi would send it: data is
// marshalled as the event's data, properties name the signed values under
// it. It returns the body and its checksum (also in signature.checksum), to
// send as X-Event-Checksum. The simulator uses it.
func SignEvent(event string, data any, properties []string, at time.Time, secret string) (body []byte, sum string, err error) {
	d, err := json.Marshal(data)
	if err != nil {
		return nil, "", err
	}
	ts := at.UnixMilli()
	if sum, err = EventChecksum(d, properties, ts, secret); err != nil {
		return nil, "", err
	}
	body, err = json.Marshal(struct {
		Event     string          `json:"event"`
		Data      json.RawMessage `json:"data"`
		Signature Signature       `json:"signature"`
		Timestamp int64           `json:"timestamp"`
		SentAt    string          `json:"sentAt"`
	}{event, d, Signature{properties, sum}, ts, at.UTC().Format("2006-01-02T15:04:05.000Z")})
	return body, sum, err
}
