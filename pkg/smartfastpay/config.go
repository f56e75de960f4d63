package smartfastpay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Hosts [doc]. The base URL is the host only: the client appends the paths.
const (
	SandboxBaseURL    = "https://sandbox.smartfastpay.com"
	ProductionBaseURL = "https://api.smartfastpay.com"
)

// HeaderSignature carries a callback's signature [doc].
const HeaderSignature = "SmartFastPay-Signature"

// The environment variables the workers read (see ConfigFromEnv).
const (
	EnvBaseURL       = "SMARTFASTPAY_BASE_URL"
	EnvClientID      = "SMARTFASTPAY_CLIENT_ID"
	EnvClientSecret  = "SMARTFASTPAY_CLIENT_SECRET"
	EnvWebhookSecret = "SMARTFASTPAY_WEBHOOK_SECRET"
	EnvCallbackURL   = "SMARTFASTPAY_CALLBACK_URL"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultUserAgent = "wompi-payouts-pipeline/1"
	// DefaultPageSize is the listing's page limit: the documented maximum.
	DefaultPageSize = MaxPageSize
	// DefaultRefreshBefore is how long before its expiry a cached token is
	// replaced, so that a call never leaves with a token about to die. For
	// a token that lives less than twice this, half its life is used.
	DefaultRefreshBefore = time.Minute
	// MaxResponseBytes bounds how much of an answer the client reads.
	MaxResponseBytes = 8 << 20
)

// Config configures a Client. Zero fields get the documented defaults;
// ClientID and ClientSecret are required. String, GoString and %+v never
// print the secrets.
type Config struct {
	// BaseURL is the host, e.g. SandboxBaseURL (the default) or a
	// simulator's URL, without a path.
	BaseURL string
	// ClientID and ClientSecret obtain the OAuth2 tokens (client
	// credentials, HTTP Basic) [doc].
	ClientID, ClientSecret string
	// CallbackURL is sent as callback when a PayoutRequest carries none.
	CallbackURL string
	// WebhookSecret keys the callbacks' HMAC (from GET /v1/webhook/secret,
	// not the client secret) [doc]. Only Client.Webhooks needs it.
	WebhookSecret string
	// WebhookMaxAge refuses callbacks whose t is older than this. Zero, the
	// default, sets no limit: whether t changes on the provider's retries
	// is not published, and a retry three days later must still verify
	// [ours].
	WebhookMaxAge time.Duration
	// HTTPClient is used for every call. Default: a client with
	// DefaultTimeout. Its Timeout bounds a whole call; on a create, a
	// timeout is OutcomeUnknown.
	HTTPClient *http.Client
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// PageSize is the listing's limit, 1 to MaxPageSize. Default
	// DefaultPageSize.
	PageSize int
	// RefreshBefore: see DefaultRefreshBefore.
	RefreshBefore time.Duration
	// Now is the clock of the token cache and of WebhookMaxAge. Default
	// time.Now.
	Now func() time.Time
	// Logger receives the unknown statuses (provider id and status only).
	// Default: discard.
	Logger *slog.Logger
}

// ConfigFromEnv reads the SMARTFASTPAY_* variables with getenv (os.Getenv
// in the workers); BaseURL defaults to SandboxBaseURL.
func ConfigFromEnv(getenv func(string) string) Config {
	base := getenv(EnvBaseURL)
	if base == "" {
		base = SandboxBaseURL
	}
	return Config{BaseURL: base, ClientID: getenv(EnvClientID), ClientSecret: getenv(EnvClientSecret),
		WebhookSecret: getenv(EnvWebhookSecret), CallbackURL: getenv(EnvCallbackURL)}
}

// String redacts the secrets.
func (c Config) String() string {
	return fmt.Sprintf("smartfastpay.Config{BaseURL:%q ClientID:%s ClientSecret:%s WebhookSecret:%s CallbackURL:%q PageSize:%d}",
		c.BaseURL, redact(c.ClientID), redact(c.ClientSecret), redact(c.WebhookSecret), c.CallbackURL, c.PageSize)
}

// GoString redacts the secrets (used by %#v).
func (c Config) GoString() string { return c.String() }

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[REDACTED]"
}

// ErrConfig is wrapped by New when the Config is unusable; the message
// names the field.
var ErrConfig = errors.New("smartfastpay: invalid config")
