package wompi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
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

// Bounds on what one webhook may ask of the checksum [ours]: Wompi signs
// three or four short values, so these leave a wide margin while one
// unsigned body can no longer make the tracker hash (or allocate) more than
// a few KiB per property list.
const (
	// MaxSignedProperties bounds signature.properties.
	MaxSignedProperties = 32
	// MaxSignedBytes bounds the rendered values the checksum covers, all
	// properties together.
	MaxSignedBytes = 16 << 10
	// maxEventDepth bounds the nesting of a webhook body.
	maxEventDepth = 32
	// maxEventValues bounds the JSON values of a webhook body (objects,
	// arrays and scalars alike, the body itself included). The body is
	// parsed before its checksum can be checked, and a parsed value takes
	// up to 50 times the bytes it is written in (a 1 MiB body of zeros
	// made 53 MB of maps, slices and numbers): an unsigned body could make
	// each webhook being handled hold that much. A documented event has
	// about 25; a body with more is refused as malformed (the tracker
	// answers 401), and the poller reads what it would have said.
	maxEventValues = 4096
)

// Refusals of a webhook beyond a wrong checksum. Both wrap one of the two
// documented sentinels, so errors.Is(err, ErrInvalidChecksum) or
// errors.Is(err, ErrMalformedEvent) still holds.
var (
	// ErrAmbiguousEvent: a webhook body repeats a key, or carries two keys
	// that differ only in case, in one object. A signature read with one
	// key and a decoder that reads the other would disagree on what was
	// signed, so such a body is never accepted. Wraps ErrMalformedEvent.
	ErrAmbiguousEvent = fmt.Errorf("%w: duplicate or case-variant keys", ErrMalformedEvent)
	// ErrUnsignedField: the signature of a transaction.updated or
	// payout.updated does not cover the entity's id, status and
	// amountInCents (or the event's data does not hold the entity its name
	// says, or holds the other kind too). Such an event would let anyone
	// holding one genuine event forge another. Wraps ErrInvalidChecksum.
	ErrUnsignedField = fmt.Errorf("%w: the signature does not cover the event's id, status and amount", ErrInvalidChecksum)
	// ErrSignatureTooLarge: the property list or the values it names
	// exceed MaxSignedProperties or MaxSignedBytes, or a property names an
	// object or an array. Wraps ErrMalformedEvent.
	ErrSignatureTooLarge = fmt.Errorf("%w: signature over too many or too large values", ErrMalformedEvent)
)

// entityOf is the data key a known event's entity lives under, and the
// other known entity it must not carry.
func entityOf(event string) (entity, other string, ok bool) {
	switch event {
	case EventTransactionUpdated:
		return "transaction", "payout", true
	case EventPayoutUpdated:
		return "payout", "transaction", true
	}
	return "", "", false
}

// VerifyEvent checks a webhook body like ParseEvent and returns its error.
func VerifyEvent(body []byte, headerChecksum, secret string) error {
	_, err := ParseEvent(body, headerChecksum, secret)
	return err
}

// ParseEvent verifies a webhook body and decodes it, from one strict parse
// of body: what is returned is exactly what the checksum covered.
//
//   - The body must be one JSON object in which no object repeats a key or
//     holds two keys equal under case folding (ErrAmbiguousEvent): Go's
//     encoding/json matches keys case-insensitively and lets a later key
//     win, so such a body could be read two ways.
//   - The checksum [doc]: the values named in signature.properties, in
//     order, looked up under data with exact-case dotted paths (strings as
//     is, numbers as JSON numbers without exponent, booleans, null or
//     absent as ""), concatenated, then the timestamp, then secret; SHA-256
//     hex, hashed as the values are read; compared in constant time with
//     headerChecksum (X-Event-Checksum) when not empty, else with
//     signature.checksum (ErrInvalidChecksum). At most MaxSignedProperties
//     properties and MaxSignedBytes of values, scalars only
//     (ErrSignatureTooLarge).
//   - transaction.updated and payout.updated must sign their entity's id,
//     status and amountInCents, and data must hold that entity and not the
//     other kind (ErrUnsignedField). Other properties (a transaction's
//     payoutId, a payout's reference) may be unsigned, as in Wompi's
//     documented example: the caller checks them against its own records.
//   - Transaction (or Payout) is decoded from the same parsed object, with
//     the same exact-case keys for id, status, amountInCents, payoutId and
//     reference; other events keep only Data.
func ParseEvent(body []byte, headerChecksum, secret string) (*Event, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: no events secret configured", ErrInvalidChecksum)
	}
	root, err := decodeStrict(body)
	if err != nil {
		return nil, err
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMalformedEvent)
	}
	var ev Event
	if ev.Event, err = exactString(top, "event"); err != nil {
		return nil, err
	}
	data, _ := top["data"].(map[string]any)
	sig, _ := top["signature"].(map[string]any)
	ts, _ := top["timestamp"].(json.Number)
	if data == nil || sig == nil || ts == "" {
		return nil, fmt.Errorf("%w: missing data, signature or timestamp", ErrMalformedEvent)
	}
	if ev.Signature.Properties, err = stringList(sig["properties"]); err != nil {
		return nil, err
	}
	if ev.Signature.Checksum, err = exactString(sig, "checksum"); err != nil {
		return nil, err
	}
	if len(ev.Signature.Properties) == 0 {
		return nil, fmt.Errorf("%w: empty signature.properties", ErrMalformedEvent)
	}
	want := strings.TrimSpace(headerChecksum)
	if want == "" {
		want = ev.Signature.Checksum
	}
	if want == "" {
		return nil, fmt.Errorf("%w: no checksum in header or body", ErrInvalidChecksum)
	}
	got, err := checksumOf(data, ev.Signature.Properties, renderNumber(ts.String()), secret)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(want)), []byte(got)) != 1 {
		return nil, ErrInvalidChecksum
	}
	if ev.Timestamp, err = timestampOf(ts); err != nil {
		return nil, err
	}
	if ev.Data, err = json.Marshal(data); err != nil {
		return nil, fmt.Errorf("%w: data: %w", ErrMalformedEvent, err)
	}
	if s, ok := top["sentAt"]; ok {
		if b, err := json.Marshal(s); err == nil {
			_ = ev.SentAt.UnmarshalJSON(b)
		}
	}
	entity, other, known := entityOf(ev.Event)
	if !known {
		return &ev, nil
	}
	obj, _ := data[entity].(map[string]any)
	if obj == nil || data[other] != nil {
		return nil, fmt.Errorf("%w: %s needs data.%s only", ErrUnsignedField, ev.Event, entity)
	}
	for _, f := range []string{"id", "status", "amountInCents"} {
		if !slices.Contains(ev.Signature.Properties, entity+"."+f) {
			return nil, fmt.Errorf("%w: %s.%s is not signed", ErrUnsignedField, entity, f)
		}
	}
	if err := statusDelimited(data, ev.Signature.Properties, entity+".status"); err != nil {
		return nil, err
	}
	switch entity {
	case "transaction":
		ev.Transaction, err = transactionEvent(obj)
	default:
		ev.Payout, err = payoutEvent(obj)
	}
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// statusDelimited refuses a property list in which the signed status
// touches a neighbouring signed value that could take part of it. The
// checksum concatenates the values with no separator and the list is the
// body's own, so a genuine AFE_REJECTED signed as id, status, amount
// verifies just as well as id, x = "AFE_", status = "REJECTED", amount
// (and PENDING_APPROVAL as PENDING, "_APPROVAL"). Statuses are upper case
// and '_' only: when the nearest non-empty values before and after the
// status (the timestamp, digits, after the last) neither end nor start
// with one of those, the status is a whole run of the signed string and
// cannot be cut another way. Wompi's documented list (a lower-case uuid,
// the status, a number) passes.
func statusDelimited(data map[string]any, properties []string, status string) error {
	statusByte := func(b byte) bool { return b == '_' || b >= 'A' && b <= 'Z' }
	for i, p := range properties {
		if p != status {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if v, _ := render(lookup(data, properties[j])); v != "" {
				if statusByte(v[len(v)-1]) {
					return fmt.Errorf("%w: %s is not delimited from %q", ErrUnsignedField, status, truncateKey(properties[j]))
				}
				break
			}
		}
		for j := i + 1; j < len(properties); j++ {
			if v, _ := render(lookup(data, properties[j])); v != "" {
				if statusByte(v[0]) {
					return fmt.Errorf("%w: %s is not delimited from %q", ErrUnsignedField, status, truncateKey(properties[j]))
				}
				break
			}
		}
	}
	return nil
}

// exactFields are the entity fields decoded by their exact-case key; the
// rest of an entity goes through encoding/json (unsigned, informative).
var exactFields = []string{"id", "status", "amountInCents", "payoutId", "reference"}

// exactFolded are the exactFields folded (foldKey).
var exactFolded = func() []string {
	f := make([]string, len(exactFields))
	for i, k := range exactFields {
		f[i] = foldKey(k)
	}
	return f
}()

// decodeRest decodes the entity obj into dst without the exactFields (nor
// any key folding to one of them: there is none, decodeStrict refused
// case variants, but a lone "ID" would still reach ID through
// encoding/json).
func decodeRest(obj map[string]any, dst any) error {
	rest := make(map[string]any, len(obj))
	for k, v := range obj {
		if !slices.Contains(exactFolded, foldKeyFast(k)) {
			rest[k] = v
		}
	}
	b, err := json.Marshal(rest)
	if err == nil {
		err = json.Unmarshal(b, dst)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	return nil
}

func transactionEvent(obj map[string]any) (*TransactionEvent, error) {
	var t TransactionEvent
	if err := decodeRest(obj, &t); err != nil {
		return nil, err
	}
	var status string
	var err error
	if t.ID, err = requiredString(obj, "id"); err != nil {
		return nil, err
	}
	if status, err = requiredString(obj, "status"); err != nil {
		return nil, err
	}
	t.Status = TransactionStatus(status)
	if t.AmountInCents, err = exactInt(obj, "amountInCents"); err != nil {
		return nil, err
	}
	if t.PayoutID, err = exactString(obj, "payoutId"); err != nil {
		return nil, err
	}
	return &t, nil
}

func payoutEvent(obj map[string]any) (*PayoutEvent, error) {
	var p PayoutEvent
	if err := decodeRest(obj, &p); err != nil {
		return nil, err
	}
	var status string
	var err error
	if p.ID, err = requiredString(obj, "id"); err != nil {
		return nil, err
	}
	if status, err = requiredString(obj, "status"); err != nil {
		return nil, err
	}
	p.Status = BatchStatus(status)
	if p.AmountInCents, err = exactInt(obj, "amountInCents"); err != nil {
		return nil, err
	}
	if p.Reference, err = exactString(obj, "reference"); err != nil {
		return nil, err
	}
	return &p, nil
}

// exactString reads m[k]: absent or null is "", a non-string is malformed.
func exactString(m map[string]any, k string) (string, error) {
	switch v := m[k].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", fmt.Errorf("%w: %s is not a string", ErrMalformedEvent, k)
}

func requiredString(m map[string]any, k string) (string, error) {
	s, err := exactString(m, k)
	if err == nil && s == "" {
		err = fmt.Errorf("%w: %s is missing or empty", ErrUnsignedField, k)
	}
	return s, err
}

// exactInt reads the JSON number m[k] as an integer (7.5e6 is 7500000).
func exactInt(m map[string]any, k string) (int64, error) {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0, fmt.Errorf("%w: %s is not a number", ErrUnsignedField, k)
	}
	v, err := strconv.ParseInt(renderNumber(n.String()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s is not an integer", ErrMalformedEvent, k)
	}
	return v, nil
}

// timestampOf reads an event's timestamp: unix milliseconds of thirteen
// digits (September 2001 to November 2286). The checksum concatenates the
// signed values and the timestamp with no separator, so with a timestamp of
// any length a review re-cut Wompi's genuine example into amount 75000001
// and timestamp 747673128600, or a timestamp of 1971 after a new signed
// value "17": with thirteen digits the signed string ends with exactly the
// timestamp, and no value before it can take or give some of its digits.
// (A signed amount can still be re-cut against a new neighbouring value;
// the tracker compares every amount with its own records.)
func timestampOf(ts json.Number) (int64, error) {
	text := renderNumber(ts.String())
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: timestamp is not an integer", ErrMalformedEvent)
	}
	if len(text) != 13 || text[0] < '1' || text[0] > '9' {
		return 0, fmt.Errorf("%w: timestamp is not thirteen digits of unix milliseconds", ErrMalformedEvent)
	}
	return v, nil
}

func stringList(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: signature.properties is not a list", ErrMalformedEvent)
	}
	if len(arr) > MaxSignedProperties {
		return nil, fmt.Errorf("%w: %d properties (at most %d)", ErrSignatureTooLarge, len(arr), MaxSignedProperties)
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%w: a property is not a string", ErrMalformedEvent)
		}
		out[i] = s
	}
	return out, nil
}

// foldKey maps a key to one representative of its case-folding class (the
// smallest rune of each unicode.SimpleFold orbit), the way encoding/json
// matches keys: "ID", "Id" and "id" (and the Kelvin sign K and k) fold
// alike.
func foldKey(k string) string {
	return strings.Map(func(r rune) rune {
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		return min
	}, k)
}

func truncateKey(k string) string {
	if len(k) > 32 {
		return k[:32]
	}
	return k
}

// EventChecksum computes the checksum of an event whose data is the JSON
// object data (see ParseEvent), with the same bounds.
func EventChecksum(data []byte, properties []string, timestampMillis int64, secret string) (string, error) {
	root, err := decodeStrict(data)
	if err != nil {
		return "", err
	}
	m, ok := root.(map[string]any)
	if !ok {
		return "", fmt.Errorf("%w: data is not an object", ErrMalformedEvent)
	}
	if len(properties) > MaxSignedProperties {
		return "", fmt.Errorf("%w: %d properties", ErrSignatureTooLarge, len(properties))
	}
	return checksumOf(m, properties, strconv.FormatInt(timestampMillis, 10), secret)
}

// checksumOf hashes the named values as it reads them: no concatenation is
// built, and it stops at MaxSignedBytes.
func checksumOf(data map[string]any, properties []string, timestamp, secret string) (string, error) {
	h := sha256.New()
	total := 0
	for _, p := range properties {
		s, err := render(lookup(data, p))
		if err != nil {
			return "", fmt.Errorf("%w: property %q", err, truncateKey(p))
		}
		if total += len(s); total > MaxSignedBytes {
			return "", fmt.Errorf("%w: more than %d bytes", ErrSignatureTooLarge, MaxSignedBytes)
		}
		io.WriteString(h, s)
	}
	io.WriteString(h, timestamp)
	io.WriteString(h, secret)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lookup walks an exact-case dotted path; a missing value is nil
// (rendered "").
func lookup(v any, path string) any {
	for k := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// render renders one signed value. Only scalars are signed [doc]: an
// object or an array is refused (re-rendering a whole subtree per listed
// property is how one body could ask for gigabytes).
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
	}
	return "", fmt.Errorf("%w: not a scalar", ErrSignatureTooLarge)
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
