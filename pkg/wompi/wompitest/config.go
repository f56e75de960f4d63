package wompitest

import (
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// Account is an origin account of the simulated client.
type Account struct {
	ID          string
	Number      string
	BankCode    string
	AccountType string
	// Status is ACTIVE (default), IN_REVIEW or INACTIVE; a batch from a
	// non-ACTIVE account is rejected with 400 [ours].
	Status            string
	BalanceInCents    int64
	DailyLimitInCents int64
}

// The default origin accounts (see DefaultAccounts).
const (
	// AccountMain has ample balance and the client's whole daily limit.
	AccountMain = "11111111-1111-4111-8111-111111111111"
	// AccountSecondary has a moderate balance and a lower daily limit.
	AccountSecondary = "22222222-2222-4222-8222-222222222222"
	// AccountLow holds only $100,000.00, to exercise EXC_008.
	AccountLow = "33333333-3333-4333-8333-333333333333"
)

// DefaultAccounts returns the accounts a zero Config gets [ours].
func DefaultAccounts() []Account {
	return []Account{
		{ID: AccountMain, Number: "40000000001", BankCode: "1007", AccountType: "CORRIENTE", Status: wompi.AccountActive,
			BalanceInCents: 1_000_000_000_000, DailyLimitInCents: 150_000_000_000},
		{ID: AccountSecondary, Number: "40000000002", BankCode: "1051", AccountType: "AHORROS", Status: wompi.AccountActive,
			BalanceInCents: 50_000_000_000, DailyLimitInCents: 20_000_000_000},
		{ID: AccountLow, Number: "40000000003", BankCode: "1001", AccountType: "AHORROS", Status: wompi.AccountActive,
			BalanceInCents: 10_000_000, DailyLimitInCents: 5_000_000_000},
	}
}

// FailureRule makes the bank refuse a transaction: an account number ending
// in Suffix settles FAILED with Code and Message.
type FailureRule struct {
	Suffix  string
	Code    string
	Message string
}

// DefaultFailureRules is the documented test table [ours], with Wompi's real
// rejection codes [doc].
var DefaultFailureRules = []FailureRule{
	{"002", "D02", "Bank does not exist"},
	{"007", "D07", "Account number does not exist"},
	{"010", "D10", "Account not authorized for credit"},
	{"011", "D11", "Account and Nit do not match"},
	{"019", "D19", "Insufficient funds"},
	{"021", "D21", "Beneficiary name missing"},
	{"049", "D49", "Bank code not allowed"},
}

// DefaultCancelPrefix: an account number starting with it settles CANCELLED
// (the approver rejected it) [ours].
const DefaultCancelPrefix = "999"

// DefaultForcedFailure is the reason of every transaction of a batch sent
// with transactionStatus FAILED and no matching suffix rule [ours].
var DefaultForcedFailure = FailureRule{Code: "D07", Message: "Account number does not exist (sandbox transactionStatus FAILED)"}

// Limits Wompi documents [doc].
const (
	DefaultClientDailyLimit = 150_000_000_000 // $1,500,000,000.00
	DefaultDailyBatchCap    = 3800
	DefaultIdempotencyTTL   = 24 * time.Hour
	MinRechargeInCents      = 100_000       // $1,000.00
	MaxRechargeInCents      = 5_000_000_000 // $50,000,000.00
)

// Config configures a Server. Zero fields get the documented defaults.
type Config struct {
	// APIKey and PrincipalID are the credentials every /v1 call must carry.
	// Defaults "sim-api-key" and "sim-principal".
	APIKey, PrincipalID string
	// EventsSecret signs webhooks. Default "sim-events-secret".
	EventsSecret string

	// Accounts default to DefaultAccounts.
	Accounts []Account
	// Banks default to wompi.ColombianBanks; each gets the id BankID(code).
	Banks []wompi.ColombianBank
	// ClientDailyLimitInCents is the client-wide amount per Bogota day.
	ClientDailyLimitInCents int64
	// DailyBatchCap is the client's batches per Bogota day.
	DailyBatchCap int
	// IdempotencyTTL is how long a key blocks reuse (default 24 h).
	IdempotencyTTL time.Duration

	// Clock defaults to the real clock; then Start and NewTestServer also
	// run a loop calling Tick every SettleInterval (default 50 ms).
	Clock          Clock
	SettleInterval time.Duration
	// A transaction settles SettleDelay plus a jitter in [0, SettleJitter)
	// derived from its reference after it becomes due (creation, or the
	// dispersion time of a scheduled batch). Defaults 1 s and 2 s; set
	// SettleJitter negative for no jitter.
	SettleDelay, SettleJitter time.Duration

	// FailureRules default to DefaultFailureRules; CancelPrefix to
	// DefaultCancelPrefix ("-" disables it); ForcedFailure to
	// DefaultForcedFailure.
	FailureRules  []FailureRule
	CancelPrefix  string
	ForcedFailure *FailureRule

	// WebhookURL receives the signed events; empty means none (set it later
	// with SetWebhookURL).
	WebhookURL string
	// WebhookWorkers bounds concurrent deliveries (default 4). A non-2xx
	// answer is retried WebhookRetries more times (default 3, set -1 for
	// none) after WebhookBackoff, doubling (default 200 ms). WebhookTimeout
	// bounds one delivery (default 5 s).
	WebhookWorkers int
	WebhookRetries int
	WebhookBackoff time.Duration
	WebhookTimeout time.Duration

	// Faults are the initial fault knobs (see SetFaults).
	Faults Faults
	// Seed seeds the fault dice and the id prefix; 0 picks a random one.
	Seed uint64

	// PublishedOnly switches off every [ours] extra of the answers, so a
	// test sees only what Wompi publishes ([doc] or [sdk]):
	//   - GET /limits ignores ?date= and answers today's figures, without
	//     numberOfBatchesConsumed, accounts[] or date;
	//   - a batch (GET /payouts, /payouts/{id}) carries no accountId or
	//     recurring; a transaction (GET .../transactions) no payoutId;
	//   - POST /accounts/balance-recharge answers without balanceInCents.
	// Env WOMPISIM_PUBLISHED_ONLY in cmd/wompisim.
	PublishedOnly bool

	// StrictStatusFilter makes GET /payouts answer 400 to a status filter
	// value outside the six documented batch statuses (PENDING_APPROVAL,
	// PENDING, NOT_APPROVED, REJECTED, PARTIAL_PAYMENT, TOTAL_PAYMENT). Off
	// by default: the docs do not say what Wompi does with an unknown
	// value, so by default the simulator also accepts the [sdk] AFE_ON_HOLD
	// and AFE_REJECTED (and matches nothing else).
	StrictStatusFilter bool

	// FixedSignatureProperties signs every webhook over the documented
	// example list (id, status, amountInCents). By default the list varies
	// from event to event, as Wompi says it may [doc].
	FixedSignatureProperties bool

	// LenientContentType accepts a POST /payouts whose Content-Type is not
	// application/json (the docs require it; by default a wrong one gets
	// 415) [ours: the status code].
	LenientContentType bool

	// BankSettlement makes settlement time depend on the bank [doc: about
	// 1 h when the payee's bank is the origin account's, up to 24 h
	// through ACH]: SameBankDelay and ACHDelay (defaults 1 h and 24 h,
	// each scaled by SettleScale) replace SettleDelay, and the jitter is a
	// fraction of them. Off by default: tests want seconds. The delays
	// follow the injectable Clock.
	BankSettlement bool
	SameBankDelay  time.Duration
	ACHDelay       time.Duration
	// SettleScale multiplies SameBankDelay and ACHDelay (default 1; e.g.
	// 1.0/3600 turns an hour into a second).
	SettleScale float64

	// BatchOutcomes enables batch-level outcomes by reference suffix
	// [ours: the docs name the statuses, not how a batch reaches them]:
	// a batch whose reference ends in "-rejected" ends REJECTED, "-not-
	// approved" NOT_APPROVED, "-afe-hold" AFE_ON_HOLD, "-afe-rejected"
	// AFE_REJECTED [sdk]. Its transactions never settle and its money
	// goes back. Off by default so that no pipeline reference collides.
	BatchOutcomes bool

	// MaxPageSize caps limit on paginated queries (default 1000); the
	// default page size is 20.
	MaxPageSize int
	// Logger defaults to discarding. Personal data is never logged.
	Logger *slog.Logger
}

var bankNamespace = uuid.MustParse("6f1f0f0e-3c1a-5b7e-9d4e-7c2b1a0e9f10")

// BankID is the simulator's bankId for a bank code: a UUID v5, stable across
// runs.
func BankID(code string) string {
	return uuid.NewSHA1(bankNamespace, []byte("wompisim/bank/"+code)).String()
}

func (c *Config) defaults() {
	if c.APIKey == "" {
		c.APIKey = "sim-api-key"
	}
	if c.PrincipalID == "" {
		c.PrincipalID = "sim-principal"
	}
	if c.EventsSecret == "" {
		c.EventsSecret = "sim-events-secret"
	}
	if c.Accounts == nil {
		c.Accounts = DefaultAccounts()
	}
	if c.Banks == nil {
		c.Banks = wompi.ColombianBanks
	}
	if c.ClientDailyLimitInCents <= 0 {
		c.ClientDailyLimitInCents = DefaultClientDailyLimit
	}
	if c.DailyBatchCap <= 0 {
		c.DailyBatchCap = DefaultDailyBatchCap
	}
	if c.IdempotencyTTL <= 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.SettleInterval <= 0 {
		c.SettleInterval = 50 * time.Millisecond
	}
	if c.SettleDelay == 0 {
		c.SettleDelay = time.Second
	}
	if c.SettleDelay < 0 {
		c.SettleDelay = 0
	}
	if c.SettleJitter == 0 {
		c.SettleJitter = 2 * time.Second
	}
	if c.FailureRules == nil {
		c.FailureRules = DefaultFailureRules
	}
	if c.CancelPrefix == "" {
		c.CancelPrefix = DefaultCancelPrefix
	}
	if c.ForcedFailure == nil {
		f := DefaultForcedFailure
		c.ForcedFailure = &f
	}
	if c.WebhookWorkers <= 0 {
		c.WebhookWorkers = 4
	}
	if c.WebhookRetries == 0 {
		c.WebhookRetries = 3
	}
	if c.WebhookRetries < 0 {
		c.WebhookRetries = 0
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = 200 * time.Millisecond
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 5 * time.Second
	}
	if c.SameBankDelay <= 0 {
		c.SameBankDelay = time.Hour
	}
	if c.ACHDelay <= 0 {
		c.ACHDelay = 24 * time.Hour
	}
	if c.SettleScale <= 0 {
		c.SettleScale = 1
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
