package wompi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Base URLs [doc].
const (
	SandboxBaseURL    = "https://api.sandbox.payouts.wompi.co/v1"
	ProductionBaseURL = "https://api.payouts.wompi.co/v1"
)

// Header names [doc].
const (
	HeaderAPIKey         = "x-api-key"
	HeaderPrincipalID    = "user-principal-id"
	HeaderIdempotencyKey = "idempotency-key"
	// HeaderEventChecksum carries a webhook's checksum. When present it wins
	// over signature.checksum in the body.
	HeaderEventChecksum = "X-Event-Checksum"
)

// Defaults applied by New to a zero Config field.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultUserAgent = "wompi-payouts-pipeline/1"
	DefaultPageSize  = 100
	// DefaultReadRetries is what the workers set as Config.ReadRetries: at
	// 5% failed answers a GET then fails for good once in 3 million.
	DefaultReadRetries = 4
	// MaxResponseBytes bounds how much of a response body the client reads.
	MaxResponseBytes = 64 << 20
)

// Config configures a Client. Its zero value is usable for the sandbox once
// APIKey and PrincipalID are set. String, GoString and %+v never print the
// secrets.
type Config struct {
	// BaseURL is the API root including the version, e.g. SandboxBaseURL
	// (the default) or a simulator's URL + "/v1".
	BaseURL string
	// APIKey and PrincipalID are sent on every call as x-api-key and
	// user-principal-id. Both are required.
	APIKey      string
	PrincipalID string
	// HTTPClient is used for every call. Default: a client with
	// DefaultTimeout. Its Timeout bounds a whole call including the body read;
	// a timeout surfaces as a retryable *Error.
	HTTPClient *http.Client
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// PageSize is the page limit the iterators ask for when the filter sets
	// none. Default DefaultPageSize.
	PageSize int
	// ReadRetries is how many times a GET that failed retryably (5xx, 429,
	// a refused or reset connection) is repeated before its error is
	// returned; 0, the default, repeats nothing. A timed-out GET is not
	// repeated: it has already cost a whole timeout, and the caller's own
	// loop decides. A POST is never repeated by the client. A listing
	// retries the failed page only, so one bad answer does not cost the
	// pages already read (the dispatcher's index rebuild reads hundreds).
	ReadRetries int
	// ReadBackoff is the wait before the first repeated GET; it doubles
	// for each next one, up to 5s, with jitter. Default 100ms.
	ReadBackoff time.Duration
}

// String redacts the secrets.
func (c Config) String() string {
	return fmt.Sprintf("wompi.Config{BaseURL:%q APIKey:%s PrincipalID:%s UserAgent:%q PageSize:%d ReadRetries:%d ReadBackoff:%v}",
		c.BaseURL, redact(c.APIKey), redact(c.PrincipalID), c.UserAgent, c.PageSize, c.ReadRetries, c.ReadBackoff)
}

// GoString redacts the secrets (used by %#v).
func (c Config) GoString() string { return c.String() }

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "[REDACTED]"
}

// ErrConfig is wrapped by New when the Config is unusable.
var ErrConfig = errors.New("wompi: invalid config")

// secrets sits behind a pointer so that printing a struct that embeds a
// Client prints an address, never the values.
type secrets struct {
	apiKey      string
	principalID string
}

// Client calls the Wompi payouts API. It is safe for concurrent use.
type Client struct {
	base     string // without trailing slash
	sec      *secrets
	hc       *http.Client
	ua       string
	pageSize int

	readRetries int
	readBackoff time.Duration
}

// String redacts the secrets.
func (c *Client) String() string { return fmt.Sprintf("wompi.Client{BaseURL:%q}", c.base) }

// GoString redacts the secrets.
func (c *Client) GoString() string { return c.String() }

// BaseURL returns the API root the client calls.
func (c *Client) BaseURL() string { return c.base }

// New returns a Client. It fails, wrapping ErrConfig, when a secret is missing
// or BaseURL is not an absolute http(s) URL.
func New(cfg Config) (*Client, error) {
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = SandboxBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: BaseURL %q is not an absolute http(s) URL", ErrConfig, base)
	}
	if cfg.APIKey == "" {
		return nil, fmt.Errorf("%w: APIKey is empty", ErrConfig)
	}
	if cfg.PrincipalID == "" {
		return nil, fmt.Errorf("%w: PrincipalID is empty", ErrConfig)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	hc = rail.NoRedirects(hc)
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	ps := cfg.PageSize
	if ps <= 0 {
		ps = DefaultPageSize
	}
	if cfg.ReadRetries < 0 {
		return nil, fmt.Errorf("%w: ReadRetries %d is negative", ErrConfig, cfg.ReadRetries)
	}
	rb := cfg.ReadBackoff
	if rb <= 0 {
		rb = 100 * time.Millisecond
	}
	return &Client{base: base, sec: &secrets{cfg.APIKey, cfg.PrincipalID}, hc: hc, ua: ua, pageSize: ps,
		readRetries: cfg.ReadRetries, readBackoff: rb}, nil
}

// ValidIdempotencyKey reports whether k is 1–64 characters of ASCII letters,
// digits and '-' [doc]: the seam's rule (rail.ValidIdempotencyKey).
func ValidIdempotencyKey(k string) bool { return rail.ValidIdempotencyKey(k) }
