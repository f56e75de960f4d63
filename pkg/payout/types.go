package payout

import "time"

// PaymentType is Wompi's batch payment type.
type PaymentType string

// The payment types Wompi accepts.
const (
	PaymentPayroll   PaymentType = "PAYROLL"
	PaymentProviders PaymentType = "PROVIDERS"
	PaymentOther     PaymentType = "OTHER"
)

// LegalIDType is the beneficiary's identification type. CC, NIT and CE are
// Wompi's [doc]; PP, TI and DNI come from its [sdk]. CPF (a person) and CNPJ
// (a company) are Brazil's, for WEpayout.
type LegalIDType string

// The identification types, in the order of the Avro enum.
const (
	LegalCC   LegalIDType = "CC"
	LegalNIT  LegalIDType = "NIT"
	LegalCE   LegalIDType = "CE"
	LegalPP   LegalIDType = "PP"
	LegalTI   LegalIDType = "TI"
	LegalDNI  LegalIDType = "DNI"
	LegalCPF  LegalIDType = "CPF"
	LegalCNPJ LegalIDType = "CNPJ"
)

// AccountType is the beneficiary's bank account type. DEPOSITO_ELECTRONICO
// is [sdk].
type AccountType string

// The account types.
const (
	AccountAhorros             AccountType = "AHORROS"
	AccountCorriente           AccountType = "CORRIENTE"
	AccountDepositoElectronico AccountType = "DEPOSITO_ELECTRONICO"
)

// Interval is the period of a recurring payment. Our Avro enum uses upper
// case; Wompi's JSON wants "biweek" or "month" (see pkg/wompi).
type Interval string

// The recurrence intervals.
const (
	IntervalBiweek Interval = "BIWEEK"
	IntervalMonth  Interval = "MONTH"
)

// Beneficiary is the payee of one request. The pointer fields are the
// schema's nullable strings: nil is null (not given), which is what records
// written before a field existed decode to. A pointer to "" is a value, an
// empty one, and validation treats it as such.
type Beneficiary struct {
	LegalIDType   LegalIDType `avro:"legalIdType"`
	LegalID       string      `avro:"legalId"`
	Name          string      `avro:"name"`
	Email         string      `avro:"email"`
	BankCode      string      `avro:"bankCode"`
	BankID        *string     `avro:"bankId"`
	AccountType   AccountType `avro:"accountType"`
	AccountNumber string      `avro:"accountNumber"`
	// Phone is the payee's mobile number with its country code, digits
	// only (SmartFastPay).
	Phone *string `avro:"phone"`
	// PixKey is the payee's PIX key (WEpayout); a PIX payout sets it
	// instead of the bank fields.
	PixKey *string `avro:"pixKey"`
	// Branch, BranchDigit and AccountDigit complete a Brazilian bank
	// account (agência, its check digit, the account's check digit).
	Branch       *string `avro:"branch"`
	BranchDigit  *string `avro:"branchDigit"`
	AccountDigit *string `avro:"accountDigit"`
}

// Recurring asks Wompi to repeat a scheduled payment.
type Recurring struct {
	Interval    Interval `avro:"interval"`
	Months      int32    `avro:"months"`
	Description *string  `avro:"description"`
}

// Request is one payout request: pay one beneficiary once. It is the
// PayoutRequested record of payouts.requests.v1. RequestID becomes the Wompi
// transaction reference.
type Request struct {
	RequestID          string            `avro:"requestId"`
	OriginAccountID    string            `avro:"originAccountId"`
	PaymentType        PaymentType       `avro:"paymentType"`
	Beneficiary        Beneficiary       `avro:"beneficiary"`
	AmountInCents      int64             `avro:"amountInCents"`
	Currency           string            `avro:"currency"`
	DispersionDatetime *time.Time        `avro:"dispersionDatetime"`
	Recurring          *Recurring        `avro:"recurring"`
	RequestedAt        time.Time         `avro:"requestedAt"`
	Metadata           map[string]string `avro:"metadata"`
	// Rail names the payout provider to pay through ("wompi",
	// "smartfastpay", "wepayout"). nil (null on the wire, and every record
	// written before rails existed) lets Currency choose through
	// RAIL_ROUTES. Any other value, "" included, is an unknown rail that
	// ingest rejects; the codec never checks it.
	Rail *string `avro:"rail"`
}

// Schedule says when Wompi disperses a batch. The zero value is immediate.
type Schedule struct {
	// DispersionDatetime is set for scheduled and recurring batches. Wompi
	// takes it at minute precision, in Bogota time.
	DispersionDatetime *time.Time `avro:"dispersionDatetime"`
	Recurring          *Recurring `avro:"recurring"`
}

// ScheduleOf returns the schedule a request asks for.
func ScheduleOf(r *Request) Schedule {
	return Schedule{DispersionDatetime: r.DispersionDatetime, Recurring: r.Recurring}
}

// Immediate reports whether the schedule disperses at once.
func (s Schedule) Immediate() bool { return s.DispersionDatetime == nil && s.Recurring == nil }

// Transaction is one request inside a batch.
type Transaction struct {
	RequestID     string      `avro:"requestId"`
	Beneficiary   Beneficiary `avro:"beneficiary"`
	AmountInCents int64       `avro:"amountInCents"`
	RequestedAt   time.Time   `avro:"requestedAt"`
}

// Batch is a group of valid requests with the same origin account, payment
// type and schedule: the PayoutBatch record of payouts.batches.v1, and one
// Wompi payout. BatchID is deterministic and becomes the Wompi batch
// reference.
type Batch struct {
	BatchID            string        `avro:"batchId"`
	OriginAccountID    string        `avro:"originAccountId"`
	PaymentType        PaymentType   `avro:"paymentType"`
	Schedule           Schedule      `avro:"schedule"`
	Transactions       []Transaction `avro:"transactions"`
	TotalAmountInCents int64         `avro:"totalAmountInCents"`
	TransactionCount   int32         `avro:"transactionCount"`
	CreatedAt          time.Time     `avro:"createdAt"`
	// Attempt counts how many times the dispatcher deferred this batch and
	// re-produced it; 0 for a batch fresh from ingest.
	Attempt int32 `avro:"attempt"`
	// NotBefore, when set, tells the dispatcher not to try the batch before
	// that instant (a deferred batch waiting for its limit to reset).
	NotBefore *time.Time `avro:"notBefore"`
	// Rail is the payout provider the batch is paid through; ingest sets
	// it. nil only in batches written before rails existed, all of which
	// were Wompi's.
	Rail *string `avro:"rail"`
}

// Source says which worker observed a status change.
type Source string

// The sources of a status change.
const (
	SourceIngest     Source = "INGEST"
	SourceDispatcher Source = "DISPATCHER"
	SourceWebhook    Source = "WEBHOOK"
	SourcePoll       Source = "POLL"
)

// StatusChange is the PayoutStatusChanged record of payouts.status.v1: one
// request moved to a new status. EventID is deterministic, so consumers can
// dedupe.
type StatusChange struct {
	EventID         string    `avro:"eventId"`
	RequestID       string    `avro:"requestId"`
	BatchID         *string   `avro:"batchId"`
	PayoutID        *string   `avro:"payoutId"`
	TransactionID   *string   `avro:"transactionId"`
	Status          Status    `avro:"status"`
	PreviousStatus  *Status   `avro:"previousStatus"`
	ReasonCode      *string   `avro:"reasonCode"`
	ReasonMessage   *string   `avro:"reasonMessage"`
	AmountInCents   int64     `avro:"amountInCents"`
	OriginAccountID string    `avro:"originAccountId"`
	OccurredAt      time.Time `avro:"occurredAt"`
	Source          Source    `avro:"source"`
	// Rail is the payout provider of the request, once one is chosen; nil
	// for a request rejected before that, and in records written before
	// rails existed.
	Rail *string `avro:"rail"`
}

// BatchStatusChange is the BatchStatusChanged record of
// payouts.batch-status.v1: one batch (one Wompi payout) moved to a new
// Wompi batch status.
type BatchStatusChange struct {
	EventID            string       `avro:"eventId"`
	BatchID            string       `avro:"batchId"`
	PayoutID           *string      `avro:"payoutId"`
	OriginAccountID    string       `avro:"originAccountId"`
	PaymentType        PaymentType  `avro:"paymentType"`
	Schedule           Schedule     `avro:"schedule"`
	Status             BatchStatus  `avro:"status"`
	PreviousStatus     *BatchStatus `avro:"previousStatus"`
	StatusMessage      *string      `avro:"statusMessage"`
	TotalAmountInCents int64        `avro:"totalAmountInCents"`
	TransactionCount   int32        `avro:"transactionCount"`
	OccurredAt         time.Time    `avro:"occurredAt"`
	Source             Source       `avro:"source"`
	// Rail is the payout provider of the batch; nil in records written
	// before rails existed (Wompi's).
	Rail *string `avro:"rail"`
}

// OptString returns a pointer to s, for an optional field, or nil for "".
// The copy is allocated only when s is not empty (&s of the parameter would
// move it to the heap on every call, empty or not).
func OptString(s string) *string {
	if s == "" {
		return nil
	}
	p := new(string)
	*p = s
	return p
}
