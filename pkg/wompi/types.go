package wompi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// BatchStatus is a Wompi batch (payout) status [doc].
type BatchStatus string

// Batch statuses [doc]; the AFE ones are [sdk].
const (
	BatchPendingApproval BatchStatus = "PENDING_APPROVAL" // dashboard batches only
	BatchPending         BatchStatus = "PENDING"
	BatchNotApproved     BatchStatus = "NOT_APPROVED"
	BatchRejected        BatchStatus = "REJECTED" // final
	BatchPartialPayment  BatchStatus = "PARTIAL_PAYMENT"
	BatchTotalPayment    BatchStatus = "TOTAL_PAYMENT" // final
	BatchAFEOnHold       BatchStatus = "AFE_ON_HOLD"
	BatchAFERejected     BatchStatus = "AFE_REJECTED"
)

// Final reports whether no further change is expected: REJECTED and
// TOTAL_PAYMENT [doc], AFE_REJECTED [ours].
func (s BatchStatus) Final() bool {
	return s == BatchRejected || s == BatchTotalPayment || s == BatchAFERejected
}

// Currency is the only currency Wompi disperses.
const Currency = "COP"

// DefaultDailyLimitCents is Wompi's default client daily limit,
// $1,500,000,000.00 [doc]. Support can change it; GET /limits tells.
const DefaultDailyLimitCents int64 = 150_000_000_000

// DailyBatchCap is the number of batches a client may send per day [doc].
const DailyBatchCap = 3800

// TransactionStatus is a Wompi transaction status [doc].
type TransactionStatus string

// Transaction statuses [doc]. PROCESSING and REJECTED appear only as query
// filters.
const (
	TransactionPending    TransactionStatus = "PENDING"
	TransactionApproved   TransactionStatus = "APPROVED"  // final: paid
	TransactionCancelled  TransactionStatus = "CANCELLED" // final: must be sent again
	TransactionFailed     TransactionStatus = "FAILED"    // final: carries a rejection code
	TransactionProcessing TransactionStatus = "PROCESSING"
	TransactionRejected   TransactionStatus = "REJECTED"
)

// Final reports whether the status is final.
// PayoutStatus maps a Wompi transaction status to the pipeline status of
// its request: PENDING and PROCESSING are PENDING, FAILED and REJECTED are
// FAILED. ok is false for a status we do not know, which callers must log
// and ignore rather than guess.
func (s TransactionStatus) PayoutStatus() (st payout.Status, ok bool) {
	switch s {
	case TransactionPending, TransactionProcessing:
		return payout.StatusPending, true
	case TransactionApproved:
		return payout.StatusApproved, true
	case TransactionCancelled:
		return payout.StatusCancelled, true
	case TransactionFailed, TransactionRejected:
		return payout.StatusFailed, true
	}
	return "", false
}

func (s TransactionStatus) Final() bool {
	switch s {
	case TransactionApproved, TransactionCancelled, TransactionFailed, TransactionRejected:
		return true
	}
	return false
}

// Payment types [doc].
const (
	PaymentTypePayroll   = "PAYROLL"
	PaymentTypeProviders = "PROVIDERS"
	PaymentTypeOther     = "OTHER"
)

// Recurrence intervals, lower case as on the wire [doc].
const (
	IntervalBiweek = "biweek"
	IntervalMonth  = "month"
)

// Health statuses [doc].
const (
	HealthHealthy       = "HEALTHY"
	HealthPartialOutage = "PARTIAL_OUTAGE"
	HealthUnhealthy     = "UNHEALTHY"
)

// File types of POST /payouts/file [doc].
const (
	FileTypeWompi            = "WOMPI" // .csv
	FileTypePAB              = "PAB"
	FileTypeSAP              = "SAP"
	FileTypeDisfon           = "DISFON"
	FileTypeBancoOccidenteFC = "BANCO_OCCIDENTE_FC"
	FileTypeDavivienda       = "DAVIVIENDA"
)

// Account statuses [doc].
const (
	AccountInReview = "IN_REVIEW"
	AccountActive   = "ACTIVE"
	AccountInactive = "INACTIVE"
)

// Bogota is Colombia's time zone: UTC-5, no daylight saving. A fixed zone,
// so no tzdata is needed.
var Bogota = time.FixedZone("America/Bogota", -5*60*60)

// DispersionLayout is the wire layout of dispersionDatetime, in Bogota
// time [doc].
const DispersionLayout = "2006-01-02T15:04"

// FormatDispersion renders t as dispersionDatetime: Bogota wall time at
// minute precision (seconds are truncated).
func FormatDispersion(t time.Time) string { return t.In(Bogota).Format(DispersionLayout) }

// ParseDispersion parses a dispersionDatetime as Bogota time. It also
// accepts RFC 3339.
func ParseDispersion(s string) (time.Time, error) {
	if t, err := time.ParseInLocation(DispersionLayout, s, Bogota); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// BogotaDay returns the Bogota calendar day of t as YYYY-MM-DD.
func BogotaDay(t time.Time) string { return t.In(Bogota).Format(time.DateOnly) }

// Time is a timestamp decoded leniently: RFC 3339 with or without fraction,
// "YYYY-MM-DDTHH:mm[:ss]" (read as Bogota time), unix milliseconds, null or
// "". A value it cannot read decodes as the zero time rather than failing the
// whole response. It encodes as RFC 3339 UTC with milliseconds.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	t.Time = time.Time{}
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] != '"' {
		if ms, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			t.Time = time.UnixMilli(ms).UTC()
		}
		return nil
	}
	if v, ok := parseUTCMillis(b); ok {
		t.Time = v
		return nil
	}
	return t.unmarshalString(b)
}

// parseUTCMillis reads the form Wompi's answers use, "2006-01-02T15:04:05.000Z"
// with its quotes, without allocating: a transaction listing holds two per
// transaction. It reports false for anything else, or for a date or time
// out of range, which unmarshalString then reads as it always did
// (FuzzTimeFastPath holds the two to the same result).
func parseUTCMillis(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[0] != '"' || b[25] != '"' || b[5] != '-' || b[8] != '-' || b[11] != 'T' ||
		b[14] != ':' || b[17] != ':' || b[20] != '.' || b[24] != 'Z' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range b[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(1, 5)
	mo, ok2 := num(6, 8)
	d, ok3 := num(9, 11)
	h, ok4 := num(12, 14)
	mi, ok5 := num(15, 17)
	sec, ok6 := num(18, 20)
	ms, ok7 := num(21, 24)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 {
		return time.Time{}, false
	}
	// What is out of range (a 31 February, a 24th hour) is left to the
	// parser, which refuses it; time.Date would normalize it.
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, y) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, ms*int(time.Millisecond), time.UTC), true
}

// daysIn is the number of days of month mo (1 to 12) of year y.
func daysIn(mo, y int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// unmarshalString is UnmarshalJSON for a JSON string in any of the forms it
// accepts.
func (t *Time) unmarshalString(b []byte) error {
	var s string
	if len(b) >= 2 && b[len(b)-1] == '"' && plainASCII(b[1:len(b)-1]) {
		s = string(b[1 : len(b)-1]) // what encoding/json would read, without its reflection
	} else if err := json.Unmarshal(b, &s); err != nil {
		return nil
	}
	if s == "" {
		return nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02 15:04:05Z07:00"} {
		if v, err := time.Parse(l, s); err == nil {
			t.Time = v
			return nil
		}
	}
	for _, l := range []string{"2006-01-02T15:04:05.000", "2006-01-02T15:04:05", DispersionLayout, time.DateOnly} {
		if v, err := time.ParseInLocation(l, s, Bogota); err == nil {
			t.Time = v
			return nil
		}
	}
	return nil
}

// plainASCII reports whether b is printable ASCII without quotes or
// backslashes: a JSON string's content that reads as itself.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

// FailureReason is why a transaction FAILED. REST answers carry it as a
// string [sdk], webhooks as {code, message} [doc]; both decode here. From a
// string, Code is its leading rejection code ("D07: ..." gives D07).
type FailureReason struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *FailureReason) UnmarshalJSON(b []byte) error {
	*f = FailureReason{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f.Message = s
		f.Code = leadingCode(s)
		return nil
	}
	type plain FailureReason
	return json.Unmarshal(b, (*plain)(f))
}

// IsZero reports whether there is no failure reason.
func (f FailureReason) IsZero() bool { return f.Code == "" && f.Message == "" }

// leadingCode returns "D07" from "D07: text" or "D07 - text" or "D07".
func leadingCode(s string) string {
	i := 0
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	if i < 2 || i > 16 || (i < len(s) && s[i] != ':' && s[i] != ' ') {
		return ""
	}
	c := s[:i]
	if strings.IndexAny(c, "0123456789") < 0 {
		return ""
	}
	return c
}

// Bank is one GET /banks item [sdk].
type Bank struct {
	ID                  string `json:"id"`
	Name                string `json:"name"`
	Code                string `json:"code"`
	AchCode             string `json:"achCode,omitempty"`
	SwiftCode           string `json:"swiftCode,omitempty"`
	AllowedForOrigin    bool   `json:"allowedForOrigin"`
	IsElectronicDeposit bool   `json:"isElectronicDeposit"`
}

// AccountBank is the bank of an origin account.
type AccountBank struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// Account is one GET /accounts item: an origin account [doc]/[sdk].
type Account struct {
	ID             string      `json:"id"`
	BalanceInCents int64       `json:"balanceInCents"`
	Number         string      `json:"number"`
	Status         string      `json:"status"`
	AccountType    string      `json:"accountType"`
	Bank           AccountBank `json:"bank"`
	UpdatedAt      Time        `json:"updatedAt"`
}

// LogValue masks the account number.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("number", MaskAccountNumber(a.Number)),
		slog.String("status", a.Status), slog.String("bank", a.Bank.Code))
}

// AccountsFilter filters GET /accounts. Zero fields are not sent.
type AccountsFilter struct {
	// BankCodes is sent comma separated as bankCodes.
	BankCodes []string
	// Status is IN_REVIEW, ACTIVE or INACTIVE.
	Status string
}

// DailyLimits is the limits object of GET /limits, in cents.
type DailyLimits struct {
	DailyLimit     int64 `json:"dailyLimit"`
	DailyAvailable int64 `json:"dailyAvailable"`
	DailyConsumed  int64 `json:"dailyConsumed"`
}

// AccountLimits is one origin account's limits for the day [ours: a
// simulator extension; absent from the real API as far as we know].
type AccountLimits struct {
	AccountID      string `json:"accountId"`
	DailyLimit     int64  `json:"dailyLimit"`
	DailyConsumed  int64  `json:"dailyConsumed"`
	DailyAvailable int64  `json:"dailyAvailable"`
}

// Limits is GET /limits [sdk], plus [ours] extensions the simulator fills.
type Limits struct {
	NumberOfTransactionsConsumed int64       `json:"numberOfTransactionsConsumed"`
	Limits                       DailyLimits `json:"limits"`
	// NumberOfBatchesConsumed counts today's batches against the 3,800 cap
	// [ours].
	NumberOfBatchesConsumed int64 `json:"numberOfBatchesConsumed,omitempty"`
	// Accounts are the per-account daily limits [ours].
	Accounts []AccountLimits `json:"accounts,omitempty"`
	// Date is the Bogota day these figures are for (YYYY-MM-DD) [ours].
	Date string `json:"date,omitempty"`
}

// Recurring asks Wompi to repeat a scheduled batch [doc].
type Recurring struct {
	// Interval is IntervalBiweek or IntervalMonth; it is sent lower case
	// whatever its case here.
	Interval string `json:"interval"`
	// Months is 3, 6 or 12.
	Months int `json:"months"`
	// Description is optional.
	Description string `json:"description,omitempty"`
}

// TransactionRequest is one payee of a batch to create [doc]; PersonType,
// Phone and Description are [sdk] and omitted when empty.
type TransactionRequest struct {
	LegalIDType   string `json:"legalIdType"`
	LegalID       string `json:"legalId"`
	BankID        string `json:"bankId"`
	AccountType   string `json:"accountType"`
	AccountNumber string `json:"accountNumber"`
	Name          string `json:"name"`
	Email         string `json:"email"`
	Amount        int64  `json:"amount"` // cents
	Reference     string `json:"reference"`
	PersonType    string `json:"personType,omitempty"`
	Phone         string `json:"phone,omitempty"`
	Description   string `json:"description,omitempty"`
}

// LogValue masks personal data.
func (t TransactionRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("reference", t.Reference), slog.Int64("amount", t.Amount),
		slog.String("bankId", t.BankID), slog.String("accountNumber", MaskAccountNumber(t.AccountNumber)),
		slog.String("legalId", MaskAccountNumber(t.LegalID)), slog.String("email", MaskEmail(t.Email)))
}

// CreatePayoutRequest is the body of POST /payouts [doc].
type CreatePayoutRequest struct {
	Reference   string
	AccountID   string
	PaymentType string
	// DispersionDatetime schedules the batch; zero means immediate. It is
	// sent as Bogota wall time at minute precision and must fall on a later
	// Bogota day than the request.
	DispersionDatetime time.Time
	// Recurring repeats a scheduled batch; requires DispersionDatetime.
	Recurring *Recurring
	// TransactionStatus (APPROVED or FAILED) forces every transaction's
	// final state. SANDBOX ONLY.
	TransactionStatus string
	Transactions      []TransactionRequest
}

// TotalAmount returns the sum of the transactions' amounts.
func (r *CreatePayoutRequest) TotalAmount() int64 {
	var n int64
	for i := range r.Transactions {
		n += r.Transactions[i].Amount
	}
	return n
}

// MarshalJSON encodes the wire body (see AppendCreatePayoutBody).
func (r *CreatePayoutRequest) MarshalJSON() ([]byte, error) {
	return AppendCreatePayoutBody(nil, r), nil
}

// CreatePayoutResult is the data of a created batch [sdk]. The counts are
// integers, not lists; the answer carries no transaction ids (get them from
// PayoutTransactions).
type CreatePayoutResult struct {
	PayoutID     string `json:"payoutId"`
	Transactions int    `json:"transactions"`
	Success      int    `json:"success"`
	Failed       int    `json:"failed"`
	// TraceID is the envelope's meta.trace_id, when wrapped.
	TraceID string `json:"-"`
}

// Payout is a batch [sdk]. AccountID and Recurring are [ours] (the
// simulator fills them).
type Payout struct {
	ID                 string      `json:"id"`
	Status             BatchStatus `json:"status"`
	Reference          string      `json:"reference"`
	AmountInCents      int64       `json:"amountInCents"`
	Currency           string      `json:"currency"`
	TotalTransactions  int         `json:"totalTransactions"`
	DispersionDatetime string      `json:"dispersionDatetime,omitempty"`
	PaymentType        string      `json:"paymentType"`
	StatusMessage      string      `json:"statusMessage,omitempty"`
	AccountID          string      `json:"accountId,omitempty"`
	Recurring          *Recurring  `json:"recurring,omitempty"`
	ApprovedAt         Time        `json:"approvedAt"`
	CreatedAt          Time        `json:"createdAt"`
	UpdatedAt          Time        `json:"updatedAt"`
}

// Dispersion parses DispersionDatetime; ok is false when the batch is
// immediate or the value unreadable.
func (p *Payout) Dispersion() (t time.Time, ok bool) {
	if p.DispersionDatetime == "" {
		return time.Time{}, false
	}
	t, err := ParseDispersion(p.DispersionDatetime)
	return t, err == nil
}

// PayeeInfo is a transaction's beneficiary [sdk].
type PayeeInfo struct {
	Bank          string `json:"bank"`
	BankCode      string `json:"bankCode"`
	Name          string `json:"name"`
	Email         string `json:"email"`
	LegalID       string `json:"legalId"`
	LegalIDType   string `json:"legalIdType"`
	AccountType   string `json:"accountType"`
	AccountNumber string `json:"accountNumber"`
}

// LogValue masks personal data.
func (p PayeeInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.String("bankCode", p.BankCode),
		slog.String("accountNumber", MaskAccountNumber(p.AccountNumber)),
		slog.String("legalId", MaskAccountNumber(p.LegalID)), slog.String("email", MaskEmail(p.Email)))
}

// Transaction is one transaction of a batch [sdk]. PayoutID is [ours] (the
// simulator fills it; use the payout you queried otherwise).
type Transaction struct {
	ID            string            `json:"id"`
	PayoutID      string            `json:"payoutId,omitempty"`
	Status        TransactionStatus `json:"status"`
	AmountInCents int64             `json:"amountInCents"`
	Reference     string            `json:"reference"`
	PayeeInfo     PayeeInfo         `json:"payeeInfo"`
	FailureReason FailureReason     `json:"failureReason"`
	AppliedAt     Time              `json:"appliedAt"`
	CreatedAt     Time              `json:"createdAt"`
}

// PayoutsFilter filters GET /payouts [doc]. Zero fields are not sent.
type PayoutsFilter struct {
	Statuses  []BatchStatus // sent comma separated
	FromDate  string        // YYYY-MM-DD
	ToDate    string        // YYYY-MM-DD
	Reference string
	ID        string
	// Limit is the page size; Page the first page to read (1-based).
	Limit, Page int
	// Frozen: nothing creates a batch while the listing is walked (a
	// recovery's, while no dispatcher posts) [ours]. A page announcing
	// more batches or pages than an earlier page is then refused
	// (ErrInconsistentPage): the earlier page came from a server copy
	// behind, and in a listing newest first the newest batch it lacked is
	// on no page the walk reads.
	Frozen bool
}

// TransactionsFilter filters GET /payouts/{id}/transactions [doc].
type TransactionsFilter struct {
	Status        TransactionStatus
	Reference     string
	AccountNumber string
	PayeeName     string
	Limit, Page   int
}

// ReferenceFilter filters GET /transactions/{reference} [doc].
type ReferenceFilter struct {
	Status      TransactionStatus
	Limit, Page int
}

// Report periodicities, types and integrations [doc].
const (
	PeriodicityDaily    = "daily"
	PeriodicityWeekly   = "weekly"
	PeriodicityBiweekly = "biweekly"
	PeriodicityMonthly  = "monthly"

	ReportTypePayouts      = "payouts"
	ReportTypeTransactions = "transactions"

	ReportIntegrationPayouts  = "payouts"
	ReportIntegrationMerchant = "merchant_reports"
)

// ReportsFilter filters GET /reports/payouts [doc].
type ReportsFilter struct {
	Periodicity string
	ReportType  string
	Limit, Page int
}

// Report is one report execution [sdk]. Its ID (_id) is the
// reportExecutionId of ReportURL.
type Report struct {
	ID             string `json:"_id"`
	ReportID       string `json:"reportId"`
	RunAt          Time   `json:"runAt"`
	Status         string `json:"status"`
	QueryStartDate Time   `json:"queryStartDate"`
	QueryEndDate   Time   `json:"queryEndDate"`
	FileBucketKey  string `json:"fileBucketKey"`
}

// HealthService is one monitored service [doc].
type HealthService struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
}

// Health is GET /health [doc].
type Health struct {
	Status   string          `json:"status"`
	Services []HealthService `json:"services"`
}

// Recharge is the answer to a sandbox balance top-up [ours: undocumented].
type Recharge struct {
	AccountID      string `json:"accountId"`
	BalanceInCents int64  `json:"balanceInCents"`
	AmountInCents  int64  `json:"amountInCents,omitempty"`
}

// Page is one page of a paginated answer [sdk]. A bare JSON array decodes as
// a single complete page.
type Page[T any] struct {
	Page    int `json:"page"`
	Limit   int `json:"limit"`
	Total   int `json:"total"`
	Pages   int `json:"pages"`
	Records []T `json:"records"`
}

// UnmarshalJSON implements json.Unmarshaler.
func (p *Page[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		*p = Page[T]{Page: 1, Pages: 1}
		if err := json.Unmarshal(b, &p.Records); err != nil {
			return err
		}
		p.Total, p.Limit = len(p.Records), len(p.Records)
		return nil
	}
	type plain Page[T]
	return json.Unmarshal(b, (*plain)(p))
}

// MaskAccountNumber keeps the last four characters: "******7890". Short
// values are fully masked.
func MaskAccountNumber(s string) string {
	if len(s) <= 4 {
		return strings.Repeat("*", len(s))
	}
	return strings.Repeat("*", len(s)-4) + s[len(s)-4:]
}

// MaskEmail keeps the first letter and the domain: "j***@example.com".
func MaskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return strings.Repeat("*", len(s))
	}
	return s[:1] + "***" + s[at:]
}
