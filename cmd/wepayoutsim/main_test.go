package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseDefaults(t *testing.T) {
	st, err := parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if st.addr != "127.0.0.1:8092" || st.cfg.MerchantID != 1234 || st.cfg.APIKey != "sim-wepayout-key" || st.cfg.StepDelay != time.Second || st.cfg.WebhookRetries != 3 {
		t.Fatalf("defaults %+v", st)
	}
}

func TestParseEnvAndFlags(t *testing.T) {
	st, err := parse([]string{"-error-rate", "0.5"}, env(map[string]string{
		"WEPAYOUT_API_KEY": "k1", "WEPAYOUT_MERCHANT_ID": "77", "WEPAYOUTSIM_ERROR_RATE": "0.1",
		"WEPAYOUTSIM_STEP_DELAY": "0s", "WEPAYOUTSIM_WEBHOOK_RETRIES": "0", "WEPAYOUTSIM_DROP_RESPONSE_RATE": "0.2",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := st.cfg
	if c.APIKey != "k1" || c.MerchantID != 77 || c.Faults.ErrorRate != 0.5 || c.StepDelay != -1 || c.WebhookRetries != -1 || c.Faults.DropResponseRate != 0.2 {
		t.Fatalf("%+v", c)
	}
}

func TestParseErrorsNameTheVariable(t *testing.T) {
	for k, v := range map[string]string{
		"WEPAYOUTSIM_ERROR_RATE": "2", "WEPAYOUTSIM_LATENCY": "soon", "WEPAYOUT_MERCHANT_ID": "abc", "WEPAYOUTSIM_SEED": "-1",
	} {
		_, err := parse(nil, env(map[string]string{k: v}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
	_, err := parse(nil, env(map[string]string{"WEPAYOUT_API_KEY_FILE": "/nonexistent/key"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WEPAYOUT_API_KEY_FILE") {
		t.Errorf("missing key file: %v", err)
	}
}
