package wepayout

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Base URLs: the sandbox [seed] and production [sdk].
const (
	SandboxBaseURL    = "https://api.sandbox.wepayout.com.br"
	ProductionBaseURL = "https://api.wepayout.com.br"
)

// HeaderSignature carries a webhook's signature: "Bearer <hex>" [doc].
const HeaderSignature = "x-webhook-wp-signature"

// Defaults applied by New to a zero Config field.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultUserAgent = "wompi-payouts-pipeline/1 (wepayout)"
	// MaxResponseBytes bounds how much of an answer the client reads.
	MaxResponseBytes = 16 << 20
)

// Config configures a Client. Only APIKey is required. String, GoString and
// %+v never print the key.
type Config struct {
	// BaseURL is the host root, e.g. SandboxBaseURL (the default) or a
	// simulator's URL; the client appends /v2/... (env WEPAYOUT_BASE_URL).
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>" and signs webhooks
	// (env WEPAYOUT_API_KEY).
	APIKey string
	// MerchantID, when set, is sent as merchant_id on every create and is
	// the account Balance reads (env WEPAYOUT_MERCHANT_ID, optional). It
	// must be an integer.
	MerchantID string
	// NotificationURL is the notification_url of a create whose
	// PayoutRequest has no CallbackURL: our /webhooks/wepayout (env
	// WEPAYOUT_NOTIFICATION_URL).
	NotificationURL string
	// HTTPClient is used for every call. Default: a client with
	// DefaultTimeout, which bounds a whole call including the body read.
	HTTPClient *http.Client
	// UserAgent defaults to DefaultUserAgent.
	UserAgent string
	// PageSize is the listing's per_page (default and maximum 100).
	PageSize int
	// OnUnknownStatus, when set, is called with every status id the client
	// reads that MapStatus does not know (a metric). The client also counts
	// them (UnknownStatuses).
	OnUnknownStatus func(id int)
}

// String redacts the key.
func (c Config) String() string {
	key := `""`
	if c.APIKey != "" {
		key = "[REDACTED]"
	}
	return fmt.Sprintf("wepayout.Config{BaseURL:%q APIKey:%s MerchantID:%q NotificationURL:%q PageSize:%d}",
		c.BaseURL, key, c.MerchantID, c.NotificationURL, c.PageSize)
}

// GoString redacts the key (used by %#v).
func (c Config) GoString() string { return c.String() }

func (c *Config) normalize() (string, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = SandboxBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: BaseURL %q is not an absolute http(s) URL", ErrConfig, base)
	}
	if c.APIKey == "" {
		return "", fmt.Errorf("%w: APIKey is empty", ErrConfig)
	}
	if c.MerchantID != "" && !allDigits(c.MerchantID) {
		return "", fmt.Errorf("%w: MerchantID %q is not an integer", ErrConfig, c.MerchantID)
	}
	if c.NotificationURL != "" {
		if u, err := url.Parse(c.NotificationURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("%w: NotificationURL is not an absolute http(s) URL", ErrConfig)
		}
	}
	if c.PageSize < 0 || c.PageSize > MaxPerPage {
		return "", fmt.Errorf("%w: PageSize %d is not within 1..%d", ErrConfig, c.PageSize, MaxPerPage)
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	c.HTTPClient = rail.NoRedirects(c.HTTPClient)
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	return base, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
