package sfptest

import (
	"log/slog"
	"time"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// Rule decides a payout's fate from the payee: a phone number ending in
// Suffix walks Path after pending (the statuses it takes, in order, one per
// step). A payout whose phone matches no rule walks DefaultPath.
type Rule struct {
	Suffix string
	Path   []string
}

// DefaultPath: pending -> onhold -> success [doc: the sandbox flow].
var DefaultPath = []string{sfp.StatusOnHold, sfp.StatusSuccess}

// DefaultRules is the documented test table [ours] (first match wins):
//
//	phone ends in   statuses after pending
//	13              onhold, failed
//	21              onhold, success, refunded
//	22              onhold, success, returned
//	98              onhold (and stays there)
//	99              none: stays pending
//	anything else   onhold, success
var DefaultRules = []Rule{
	{"13", []string{sfp.StatusOnHold, sfp.StatusFailed}},
	{"21", []string{sfp.StatusOnHold, sfp.StatusSuccess, sfp.StatusRefunded}},
	{"22", []string{sfp.StatusOnHold, sfp.StatusSuccess, sfp.StatusReturned}},
	{"98", []string{sfp.StatusOnHold}},
	{"99", []string{}},
}

// Defaults of a zero Config.
const (
	DefaultClientID      = "sim-client-id"
	DefaultClientSecret  = "sim-client-secret"
	DefaultWebhookSecret = "sim-webhook-secret"
	DefaultTokenTTL      = time.Hour // [doc: expires_in 3600]
	DefaultStepDelay     = time.Second
	DefaultReversalDelay = 3 * time.Second
	// DefaultBalanceInCents is COP 10,000,000,000.00.
	DefaultBalanceInCents = 1_000_000_000_000
	// DefaultWebhookRetries: the provider retries 5 times [doc] (over 3
	// days; the simulator compresses the wait, see WebhookBackoff).
	DefaultWebhookRetries = 5
)

// Config configures a Server. Zero fields get the documented defaults.
type Config struct {
	// ClientID and ClientSecret are the credentials POST /oauth2/token
	// checks (HTTP Basic). Defaults DefaultClientID, DefaultClientSecret.
	ClientID, ClientSecret string
	// WebhookSecret signs the callbacks. Default DefaultWebhookSecret.
	WebhookSecret string
	// TokenTTL is a token's life (expires_in). Default DefaultTokenTTL.
	TokenTTL time.Duration

	// Clock defaults to the real clock; then Start and NewTestServer also
	// run a loop calling Tick every TickInterval (default 50 ms).
	Clock        Clock
	TickInterval time.Duration
	// StepDelay is the time between two statuses of a payout's path
	// (pending -> onhold -> success | failed); ReversalDelay the time from
	// success to refunded or returned. Defaults 1 s and 3 s; negative
	// means at once.
	StepDelay, ReversalDelay time.Duration
	// Rules default to DefaultRules.
	Rules []Rule

	// BalanceInCents is the starting COP balance (GET /balance). A create
	// debits it, failed, refunded and returned credit it back. It never
	// refuses a payout: what SmartFastPay answers to an empty balance is
	// not published [ours].
	BalanceInCents int64

	// WrapCreate answers a create wrapped in {"requestId", "data"} [doc,
	// v2] instead of bare [seed]. NumericAmounts writes amounts as JSON
	// numbers (98000) instead of decimal strings ("98000.00"). Both shapes
	// are documented; the client reads all of them.
	WrapCreate, NumericAmounts bool

	// WebhookWorkers bounds concurrent callback deliveries (default 4). A
	// non-2xx answer is retried WebhookRetries more times (default 5, -1
	// for none) after WebhookBackoff, doubling (default 200 ms).
	// WebhookTimeout bounds one delivery (default 5 s).
	WebhookWorkers int
	WebhookRetries int
	WebhookBackoff time.Duration
	WebhookTimeout time.Duration

	// Faults are the initial fault knobs (see SetFaults).
	Faults Faults
	// Seed seeds the fault dice, the ids and the tokens; 0 picks one.
	Seed uint64
	// Logger defaults to discarding. Personal data is never logged.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ClientSecret == "" {
		c.ClientSecret = DefaultClientSecret
	}
	if c.WebhookSecret == "" {
		c.WebhookSecret = DefaultWebhookSecret
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.StepDelay == 0 {
		c.StepDelay = DefaultStepDelay
	}
	if c.StepDelay < 0 {
		c.StepDelay = 0
	}
	if c.ReversalDelay == 0 {
		c.ReversalDelay = DefaultReversalDelay
	}
	if c.ReversalDelay < 0 {
		c.ReversalDelay = 0
	}
	if c.Rules == nil {
		c.Rules = DefaultRules
	}
	if c.BalanceInCents == 0 {
		c.BalanceInCents = DefaultBalanceInCents
	}
	if c.WebhookWorkers <= 0 {
		c.WebhookWorkers = 4
	}
	if c.WebhookRetries == 0 {
		c.WebhookRetries = DefaultWebhookRetries
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
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// pathFor returns the statuses a payout to phone walks after pending.
func (c *Config) pathFor(phone string) []string {
	for _, r := range c.Rules {
		if len(phone) >= len(r.Suffix) && phone[len(phone)-len(r.Suffix):] == r.Suffix {
			return r.Path
		}
	}
	return DefaultPath
}
