package weptest

import (
	"log/slog"
	"time"
)

// Outcome is where a payment's life ends, and the way there.
type Outcome struct {
	// Path is the status ids after 1 Created, one per step, e.g. {2, 3}.
	// The last one is where it stays.
	Path []int
	// Detail, when set, is the status_detail of the last status.
	Detail *Detail
}

// Detail is a status_detail {code, detail}.
type Detail struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// Rule picks an Outcome by the payment's rule digits: the last two decimal
// digits of its PIX key, or of its bank account number ("00" when it has
// fewer than two digits) [ours]. Document numbers are not used: their last
// two digits are check digits, which a test cannot choose.
type Rule struct {
	Digits  string
	Outcome Outcome
}

// DefaultDetailCode is the status_detail.code of the "06" cancellation.
const DefaultDetailCode = "WE0001"

// DefaultRules is the documented table [ours] (docs/rails/wepayout.md).
// Any other digits: Created -> Processing -> Paid.
var DefaultRules = []Rule{
	{"04", Outcome{Path: []int{2, 4}}},
	{"05", Outcome{Path: []int{2, 5}}},
	{"06", Outcome{Path: []int{2, 6}, Detail: &Detail{Code: DefaultDetailCode, Detail: "Cancelled by the beneficiary's institution (simulated)"}}},
	{"16", Outcome{Path: []int{2, 6}}},
	{"07", Outcome{Path: []int{7, 2, 3}}},
	{"99", Outcome{Path: []int{2}}},
}

// DefaultOutcome is the path of digits no rule names.
var DefaultOutcome = Outcome{Path: []int{2, 3}}

// Config configures a Server. Zero fields get the documented defaults.
type Config struct {
	// APIKey is the Bearer key every /v2 call must carry, and what signs
	// webhooks. Default "sim-wepayout-key".
	APIKey string
	// MerchantID is the merchant of the key (default 1234): GET
	// /v2/account/{MerchantID}/balance answers, and a create's merchant_id,
	// when given, must be it.
	MerchantID int64
	// BalanceInCents is the starting BRL balance (default R$10,000,000.00).
	// A create debits it, a payment ending 4, 5 or 6 credits it back. It
	// may go negative: the simulator never refuses for balance [ours].
	BalanceInCents int64

	// Clock defaults to the real clock; then Start and NewTestServer also
	// run a loop calling Tick every TickInterval (default 50 ms).
	Clock        Clock
	TickInterval time.Duration
	// Each step of a payment's path happens StepDelay plus a jitter in
	// [0, StepJitter) derived from its id after the previous one. Defaults
	// 1 s and 1 s; negative means none.
	StepDelay, StepJitter time.Duration

	// Rules default to DefaultRules; Default to DefaultOutcome.
	Rules   []Rule
	Default *Outcome

	// WebhookWorkers bounds concurrent deliveries (default 4). A non-2xx
	// answer is retried WebhookRetries more times (default 3, -1 for none)
	// after WebhookBackoff, doubling (default 200 ms). WebhookTimeout
	// bounds one delivery (default 5 s, WEpayout's documented limit).
	WebhookWorkers int
	WebhookRetries int
	WebhookBackoff time.Duration
	WebhookTimeout time.Duration

	// Faults are the initial fault knobs (see SetFaults).
	Faults Faults
	// Seed seeds the fault dice; 0 picks a random one.
	Seed uint64
	// FirstID is the id of the first payment (default 100001).
	FirstID int64
	// Logger defaults to discarding. Personal data is never logged.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.APIKey == "" {
		c.APIKey = DefaultAPIKey
	}
	if c.MerchantID <= 0 {
		c.MerchantID = 1234
	}
	if c.BalanceInCents == 0 {
		c.BalanceInCents = 1_000_000_000
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.StepDelay == 0 {
		c.StepDelay = time.Second
	}
	if c.StepDelay < 0 {
		c.StepDelay = 0
	}
	if c.StepJitter == 0 {
		c.StepJitter = time.Second
	}
	if c.StepJitter < 0 {
		c.StepJitter = 0
	}
	if c.Rules == nil {
		c.Rules = DefaultRules
	}
	if c.Default == nil {
		d := DefaultOutcome
		c.Default = &d
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
	if c.FirstID <= 0 {
		c.FirstID = 100001
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// DefaultAPIKey is the key a zero Config gets.
const DefaultAPIKey = "sim-wepayout-key"
