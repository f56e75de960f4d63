package railconfig

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/config"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

func parse(t *testing.T, role Role, env map[string]string) (*Settings, error) {
	t.Helper()
	s := config.New("t", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	st := Bind(s, role)
	return st, s.Parse(nil)
}

// secretFile writes a secret (with a trailing newline, as kubectl and
// editors leave it) and returns its path.
func secretFile(t *testing.T, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The values below contain "topsecret" so that a leak is easy to spot.
var (
	sfpDispatcher = map[string]string{"SMARTFASTPAY_CLIENT_ID": "id-topsecret", "SMARTFASTPAY_CLIENT_SECRET": "cs-topsecret",
		"SMARTFASTPAY_CALLBACK_URL": "https://payouts.example.com/webhooks/smartfastpay"}
	sfpTracker = map[string]string{"SMARTFASTPAY_CLIENT_ID": "id-topsecret", "SMARTFASTPAY_CLIENT_SECRET": "cs-topsecret",
		"SMARTFASTPAY_WEBHOOK_SECRET": "wh-topsecret"}
	wepDispatcher = map[string]string{"WEPAYOUT_API_KEY": "key-topsecret", "WEPAYOUT_NOTIFICATION_URL": "https://payouts.example.com/webhooks/wepayout"}
)

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestParseEnables(t *testing.T) {
	idFile, secFile, keyFile := secretFile(t, "id-topsecret"), secretFile(t, "cs-topsecret"), secretFile(t, "key-topsecret")
	cases := []struct {
		name string
		role Role
		env  map[string]string
		want []rail.Name
	}{
		{"nothing set: wompi only", Dispatcher, nil, []rail.Name{rail.Wompi}},
		{"nothing set, tracker", Tracker, nil, []rail.Name{rail.Wompi}},
		{"base URLs alone enable nothing", Dispatcher, map[string]string{"SMARTFASTPAY_BASE_URL": "http://127.0.0.1:8091", "WEPAYOUT_BASE_URL": "http://127.0.0.1:8092"}, []rail.Name{rail.Wompi}},
		{"smartfastpay in the dispatcher", Dispatcher, sfpDispatcher, []rail.Name{rail.Wompi, rail.SmartFastPay}},
		{"smartfastpay in the tracker", Tracker, sfpTracker, []rail.Name{rail.Wompi, rail.SmartFastPay}},
		{"smartfastpay from files", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CLIENT_ID", "\x00", "SMARTFASTPAY_CLIENT_SECRET", "\x00",
			"SMARTFASTPAY_CLIENT_ID_FILE", idFile, "SMARTFASTPAY_CLIENT_SECRET_FILE", secFile), []rail.Name{rail.Wompi, rail.SmartFastPay}},
		{"wepayout in the dispatcher", Dispatcher, wepDispatcher, []rail.Name{rail.Wompi, rail.WEpayout}},
		{"wepayout in the tracker needs only the key", Tracker, map[string]string{"WEPAYOUT_API_KEY": "key-topsecret"}, []rail.Name{rail.Wompi, rail.WEpayout}},
		{"wepayout key from a file, with a merchant", Dispatcher, with(wepDispatcher, "WEPAYOUT_API_KEY", "\x00", "WEPAYOUT_API_KEY_FILE", keyFile,
			"WEPAYOUT_MERCHANT_ID", "1234"), []rail.Name{rail.Wompi, rail.WEpayout}},
		{"all three", Tracker, with(sfpTracker, "WEPAYOUT_API_KEY", "k"), []rail.Name{rail.Wompi, rail.SmartFastPay, rail.WEpayout}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parse(t, tc.role, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Enabled().Names(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("enabled %v, want %v", got, tc.want)
			}
			if strings.Contains(st.String(), "topsecret") {
				t.Fatalf("String leaks a secret: %s", st)
			}
		})
	}
}

func TestDefaultsAndFiles(t *testing.T) {
	st, err := parse(t, Dispatcher, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.SmartFastPay.BaseURL != "https://sandbox.smartfastpay.com" || st.WEpayout.BaseURL != "https://api.sandbox.wepayout.com.br" {
		t.Fatalf("defaults: %q %q", st.SmartFastPay.BaseURL, st.WEpayout.BaseURL)
	}
	env := with(sfpTracker, "SMARTFASTPAY_WEBHOOK_SECRET", "\x00", "SMARTFASTPAY_WEBHOOK_SECRET_FILE", secretFile(t, "from-file"))
	st, err = parse(t, Tracker, env)
	if err != nil {
		t.Fatal(err)
	}
	if st.SmartFastPay.WebhookSecret != "from-file" {
		t.Fatalf("webhook secret from file = %q, want the file's content without its newline", st.SmartFastPay.WebhookSecret)
	}
}

// TestEnabledConfigsBuildClients: what the settings accept, the providers'
// constructors accept too (one set of rules, not two that drift apart).
func TestEnabledConfigsBuildClients(t *testing.T) {
	st, err := parse(t, Dispatcher, with(sfpDispatcher, "WEPAYOUT_API_KEY", "k", "WEPAYOUT_MERCHANT_ID", "42",
		"WEPAYOUT_NOTIFICATION_URL", "https://payouts.example.com/webhooks/wepayout"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smartfastpay.New(st.SmartFastPay); err != nil {
		t.Fatalf("smartfastpay.New: %v", err)
	}
	if _, err := wepayout.New(st.WEpayout); err != nil {
		t.Fatalf("wepayout.New: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	idFile := secretFile(t, "id-topsecret")
	cases := []struct {
		name string
		role Role
		env  map[string]string
		want string // the variable the error names
	}{
		{"client id without secret", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CLIENT_SECRET", "\x00"), "SMARTFASTPAY_CLIENT_SECRET"},
		{"client secret without id", Tracker, with(sfpTracker, "SMARTFASTPAY_CLIENT_ID", "\x00"), "SMARTFASTPAY_CLIENT_ID"},
		{"client id from a file without secret", Tracker, map[string]string{"SMARTFASTPAY_CLIENT_ID_FILE": idFile}, "SMARTFASTPAY_CLIENT_SECRET"},
		{"client id and its file both set", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CLIENT_ID_FILE", idFile), "SMARTFASTPAY_CLIENT_ID"},
		{"empty client id and its file both set", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CLIENT_ID", "", "SMARTFASTPAY_CLIENT_ID_FILE", idFile), "SMARTFASTPAY_CLIENT_ID"},
		{"api key and its file both set", Dispatcher, with(wepDispatcher, "WEPAYOUT_API_KEY_FILE", secretFile(t, "k")), "WEPAYOUT_API_KEY"},
		{"unreadable secret file", Tracker, map[string]string{"WEPAYOUT_API_KEY_FILE": "/nonexistent/key"}, "WEPAYOUT_API_KEY"},
		{"webhook secret without credentials", Tracker, map[string]string{"SMARTFASTPAY_WEBHOOK_SECRET": "wh-topsecret"}, "SMARTFASTPAY_WEBHOOK_SECRET"},
		{"callback without credentials", Dispatcher, map[string]string{"SMARTFASTPAY_CALLBACK_URL": "https://x.example.com/webhooks/smartfastpay"}, "SMARTFASTPAY_CALLBACK_URL"},
		{"tracker: enabled without webhook secret", Tracker, with(sfpTracker, "SMARTFASTPAY_WEBHOOK_SECRET", "\x00"), "SMARTFASTPAY_WEBHOOK_SECRET"},
		{"dispatcher: enabled without callback", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CALLBACK_URL", "\x00"), "SMARTFASTPAY_CALLBACK_URL"},
		{"dispatcher: wepayout without notification URL", Dispatcher, with(wepDispatcher, "WEPAYOUT_NOTIFICATION_URL", "\x00"), "WEPAYOUT_NOTIFICATION_URL"},
		{"merchant without key", Tracker, map[string]string{"WEPAYOUT_MERCHANT_ID": "12"}, "WEPAYOUT_MERCHANT_ID"},
		{"notification URL without key", Tracker, map[string]string{"WEPAYOUT_NOTIFICATION_URL": "https://x.example.com/webhooks/wepayout"}, "WEPAYOUT_NOTIFICATION_URL"},
		{"merchant not an integer", Dispatcher, with(wepDispatcher, "WEPAYOUT_MERCHANT_ID", "m-12"), "WEPAYOUT_MERCHANT_ID"},
		{"bad smartfastpay base URL", Tracker, map[string]string{"SMARTFASTPAY_BASE_URL": "sandbox.smartfastpay.com"}, "SMARTFASTPAY_BASE_URL"},
		{"bad wepayout base URL", Tracker, map[string]string{"WEPAYOUT_BASE_URL": "ftp://api.wepayout.com.br"}, "WEPAYOUT_BASE_URL"},
		// SmartFastPay refuses a callback outside 30-250 characters [seed]:
		// every create would fail after batching.
		{"callback under 30 characters", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CALLBACK_URL", "https://a.example.io/sfp"), "SMARTFASTPAY_CALLBACK_URL"},
		{"callback over 250 characters", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CALLBACK_URL", "https://x.example.com/"+strings.Repeat("a", 240)), "SMARTFASTPAY_CALLBACK_URL"},
		{"relative callback", Dispatcher, with(sfpDispatcher, "SMARTFASTPAY_CALLBACK_URL", "/webhooks/smartfastpay"), "SMARTFASTPAY_CALLBACK_URL"},
		{"relative notification URL", Dispatcher, with(wepDispatcher, "WEPAYOUT_NOTIFICATION_URL", "webhooks/wepayout"), "WEPAYOUT_NOTIFICATION_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.role, tc.env)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Env != tc.want {
				t.Fatalf("err = %v, want a config error naming %s", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "topsecret") || strings.Contains(msg, "\n") {
				t.Fatalf("error leaks a secret or is not one line: %q", msg)
			}
		})
	}
}

func TestEnabledGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	st, err := parse(t, Dispatcher, wepDispatcher)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Enabled().Register(reg); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP payouts_rail_enabled 1 when this worker has the credentials of the rail (it is enabled), else 0.
# TYPE payouts_rail_enabled gauge
payouts_rail_enabled{rail="smartfastpay"} 0
payouts_rail_enabled{rail="wepayout"} 1
payouts_rail_enabled{rail="wompi"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "payouts_rail_enabled"); err != nil {
		t.Fatal(err)
	}
}

// A single-payout rail's client keeps enough idle connections for the
// payees a batch sends at once, and keeps the whole-call timeout.
func TestSingleClientPool(t *testing.T) {
	c := singleClient(3 * time.Second)
	tr, ok := c.Transport.(*http.Transport)
	if !ok || tr.MaxIdleConnsPerHost != idleConnsPerRail || c.Timeout != 3*time.Second {
		t.Fatalf("client %+v transport %T, want %d idle connections per host and a 3s timeout", c, c.Transport, idleConnsPerRail)
	}
}
