// Package railconfig defines, once for the dispatcher and the tracker, the
// settings of the rails that join Wompi: SMARTFASTPAY_* and WEPAYOUT_*,
// their defaults and their validation, and which rails a worker has enabled
// (logged at start and exported as payouts_rail_enabled{rail}).
//
// A rail is enabled in a worker when its credentials are set:
//
//   - wompi: WOMPI_API_KEY and WOMPI_PRINCIPAL_ID, which both workers still
//     require, so Wompi is always enabled;
//   - smartfastpay: SMARTFASTPAY_CLIENT_ID and SMARTFASTPAY_CLIENT_SECRET;
//   - wepayout: WEPAYOUT_API_KEY.
//
// The secrets may also come from VAR_FILE (config.Set.Secret). A worker
// refuses to start, with one line naming the variable and never a secret's
// value, when a rail is half configured: one of SmartFastPay's pair without
// the other; a rail's other setting (webhook secret, callback or
// notification URL, merchant id) without its credentials; an enabled rail
// without what this worker needs of it (the dispatcher sends the callback
// and notification URLs on every payout; the tracker verifies SmartFastPay's
// callbacks with its webhook secret); a URL that is not absolute http(s); a
// merchant id that is not an integer; or VAR and VAR_FILE both set.
package railconfig

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// Role is the worker that binds the settings: it decides what an enabled
// rail needs besides its credentials.
type Role int

// The workers that read rail settings.
const (
	// Dispatcher creates payouts: an enabled SmartFastPay needs
	// SMARTFASTPAY_CALLBACK_URL, an enabled WEpayout needs
	// WEPAYOUT_NOTIFICATION_URL (where the provider posts its webhooks).
	Dispatcher Role = iota
	// Tracker verifies webhooks: an enabled SmartFastPay needs
	// SMARTFASTPAY_WEBHOOK_SECRET (WEpayout signs with its API key).
	Tracker
)

// The WEpayout variables (SmartFastPay's are smartfastpay.Env*).
const (
	EnvWEpayoutBaseURL         = "WEPAYOUT_BASE_URL"
	EnvWEpayoutAPIKey          = "WEPAYOUT_API_KEY"
	EnvWEpayoutMerchantID      = "WEPAYOUT_MERCHANT_ID"
	EnvWEpayoutNotificationURL = "WEPAYOUT_NOTIFICATION_URL"
)

// Settings are the SmartFastPay and WEpayout settings of one worker. Only
// the fields the environment sets are filled; String and %v redact the
// secrets (the provider Configs do).
type Settings struct {
	SmartFastPay smartfastpay.Config
	WEpayout     wepayout.Config
	role         Role
}

// Bind binds the SMARTFASTPAY_* and WEPAYOUT_* settings on s for the given
// worker. The checks run in s.Parse.
func Bind(s *config.Set, role Role) *Settings {
	st := &Settings{role: role}
	sf, wp := &st.SmartFastPay, &st.WEpayout
	const sfpCreds = smartfastpay.EnvClientID + " and " + smartfastpay.EnvClientSecret

	s.String(&sf.BaseURL, "smartfastpay-base-url", smartfastpay.EnvBaseURL, smartfastpay.SandboxBaseURL,
		"SmartFastPay API host, without a path (the client appends /oauth2/token, /v1/...)").
		Check(func() error { return checkURL(sf.BaseURL) })
	s.Secret(&sf.ClientID, "smartfastpay-client-id", smartfastpay.EnvClientID,
		"SmartFastPay OAuth2 client id; with "+smartfastpay.EnvClientSecret+" it enables the rail").
		Check(func() error { return pair(sf.ClientID, sf.ClientSecret, smartfastpay.EnvClientSecret) })
	s.Secret(&sf.ClientSecret, "smartfastpay-client-secret", smartfastpay.EnvClientSecret,
		"SmartFastPay OAuth2 client secret; with "+smartfastpay.EnvClientID+" it enables the rail").
		Check(func() error { return pair(sf.ClientSecret, sf.ClientID, smartfastpay.EnvClientID) })
	s.Secret(&sf.WebhookSecret, "smartfastpay-webhook-secret", smartfastpay.EnvWebhookSecret,
		"key of SmartFastPay's callback signatures (GET /v1/webhook/secret, not the client secret); required by the tracker when the rail is enabled").
		Check(func() error {
			return dependent(sf.WebhookSecret != "", st.smartFastPayEnabled(), role == Tracker, "SmartFastPay", sfpCreds,
				"the tracker verifies SmartFastPay's callbacks with it")
		})
	s.String(&sf.CallbackURL, "smartfastpay-callback-url", smartfastpay.EnvCallbackURL, "",
		"our /webhooks/smartfastpay as SmartFastPay reaches it, sent on every payout; required by the dispatcher when the rail is enabled").
		Check(func() error {
			if err := dependent(sf.CallbackURL != "", st.smartFastPayEnabled(), role == Dispatcher, "SmartFastPay", sfpCreds,
				"SmartFastPay requires a callback on every payout"); err != nil {
				return err
			}
			if err := checkURL(sf.CallbackURL); err != nil {
				return err
			}
			if n := utf8.RuneCountInString(sf.CallbackURL); n != 0 && (n < smartfastpay.MinCallbackLen || n > smartfastpay.MaxCallbackLen) {
				return fmt.Errorf("is %d characters; SmartFastPay takes a callback of %d-%d", n, smartfastpay.MinCallbackLen, smartfastpay.MaxCallbackLen)
			}
			return nil
		})

	s.String(&wp.BaseURL, "wepayout-base-url", EnvWEpayoutBaseURL, wepayout.SandboxBaseURL,
		"WEpayout API host root (the client appends /v2/...)").
		Check(func() error { return checkURL(wp.BaseURL) })
	s.Secret(&wp.APIKey, "wepayout-api-key", EnvWEpayoutAPIKey, "WEpayout API key (Bearer; also signs its webhooks); enables the rail")
	s.String(&wp.MerchantID, "wepayout-merchant-id", EnvWEpayoutMerchantID, "", "WEpayout merchant id (optional, an integer)").
		Check(func() error {
			if err := dependent(wp.MerchantID != "", st.wePayoutEnabled(), false, "WEpayout", EnvWEpayoutAPIKey, ""); err != nil {
				return err
			}
			if wp.MerchantID != "" && !allDigits(wp.MerchantID) {
				return fmt.Errorf("%q is not an integer", wp.MerchantID)
			}
			return nil
		})
	s.String(&wp.NotificationURL, "wepayout-notification-url", EnvWEpayoutNotificationURL, "",
		"our /webhooks/wepayout as WEpayout reaches it, sent on every payout; required by the dispatcher when the rail is enabled").
		Check(func() error {
			if err := dependent(wp.NotificationURL != "", st.wePayoutEnabled(), role == Dispatcher, "WEpayout", EnvWEpayoutAPIKey,
				"the dispatcher sends it on every payout, or WEpayout's status changes would reach us by polling only"); err != nil {
				return err
			}
			return checkURL(wp.NotificationURL)
		})
	return st
}

func (st *Settings) smartFastPayEnabled() bool {
	return st.SmartFastPay.ClientID != "" && st.SmartFastPay.ClientSecret != ""
}

func (st *Settings) wePayoutEnabled() bool { return st.WEpayout.APIKey != "" }

// Enabled returns the rails this worker has credentials for. Wompi is
// always among them: both workers require its credentials.
func (st *Settings) Enabled() Enabled {
	return Enabled{rail.Wompi: true, rail.SmartFastPay: st.smartFastPayEnabled(), rail.WEpayout: st.wePayoutEnabled()}
}

// String names the enabled rails and redacts every secret.
func (st *Settings) String() string {
	return fmt.Sprintf("railconfig.Settings{Enabled:%v %v %v}", st.Enabled().Names(), st.SmartFastPay, st.WEpayout)
}

// pair: the half of a credential pair that is empty while its other half
// is set (named by otherEnv) is the error.
func pair(this, other, otherEnv string) error {
	if this == "" && other != "" {
		return fmt.Errorf("is required when %s is set: the rail is half configured", otherEnv)
	}
	return nil
}

// dependent checks a rail setting that only makes sense with the rail's
// credentials: set without them is a half configuration; required (for
// this worker) and missing while the rail is enabled is too.
func dependent(set, enabled, required bool, railName, creds, why string) error {
	switch {
	case set && !enabled:
		return fmt.Errorf("is set but %s is not enabled: set %s too, or unset it", railName, creds)
	case !set && enabled && required:
		return fmt.Errorf("is required when %s is enabled (%s is set): %s", railName, creds, why)
	}
	return nil
}

// checkURL accepts "" (unset) or an absolute http(s) URL with a host.
func checkURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("is not an absolute http(s) URL")
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Enabled says which rails a worker has credentials for.
type Enabled map[rail.Name]bool

// Names lists the enabled rails in rail.Names' order: what a worker logs at
// start (names only, never a credential).
func (e Enabled) Names() []rail.Name {
	var out []rail.Name
	for _, n := range rail.Names {
		if e[n] {
			out = append(out, n)
		}
	}
	return out
}

// Register exports payouts_rail_enabled{rail}: 1 for each enabled rail, 0
// for every other rail of the product.
func (e Enabled) Register(reg prometheus.Registerer) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "payouts_rail_enabled",
		Help: "1 when this worker has the credentials of the rail (it is enabled), else 0."}, []string{"rail"})
	for _, n := range rail.Names {
		v := 0.0
		if e[n] {
			v = 1
		}
		g.WithLabelValues(string(n)).Set(v)
	}
	return reg.Register(g)
}

// Singles builds the client of every enabled single-payout rail, each with
// an HTTP client whose Timeout is timeout (a whole call, as the dispatcher's
// recovery grace assumes) and a connection pool sized for the payees a
// batch sends at once (singleClient).
func (st *Settings) Singles(timeout time.Duration) (map[rail.Name]rail.SinglePayouts, error) {
	out := map[rail.Name]rail.SinglePayouts{}
	if st.smartFastPayEnabled() {
		cfg := st.SmartFastPay
		cfg.HTTPClient = singleClient(timeout)
		c, err := smartfastpay.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("SMARTFASTPAY_BASE_URL: %w", err)
		}
		out[rail.SmartFastPay] = c
	}
	if st.wePayoutEnabled() {
		cfg := st.WEpayout
		cfg.HTTPClient = singleClient(timeout)
		c, err := wepayout.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("WEPAYOUT_BASE_URL: %w", err)
		}
		out[rail.WEpayout] = c
	}
	return out, nil
}

// idleConnsPerRail is how many idle connections a single-payout rail's
// client keeps: a batch sends several payees at once (a lookup and a POST
// each), and Go's default of 2 per host made most of them dial anew (13% of
// the workers' CPU in the per-rail load run).
const idleConnsPerRail = 64

// singleClient is the HTTP client of one single-payout rail. Neither rail's
// client sends an idempotency header, so Go's transport never replays its
// POSTs on a broken pooled connection: a failed POST is the dispatcher's to
// look up.
func singleClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * idleConnsPerRail
	t.MaxIdleConnsPerHost = idleConnsPerRail
	return &http.Client{Timeout: timeout, Transport: t}
}
