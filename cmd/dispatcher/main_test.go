package main

import (
	"os"
	"testing"
)

func TestHelpAndBadConfig(t *testing.T) {
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	stderr := os.Stderr
	os.Stderr = devnull
	defer func() { os.Stderr = stderr }()
	if code := run([]string{"--help"}); code != 0 {
		t.Fatalf("--help: exit %d, want 0", code)
	}
	t.Setenv("WOMPI_API_KEY", "k")
	t.Setenv("WOMPI_PRINCIPAL_ID", "p")
	t.Setenv("REDIS_URL", "redis://127.0.0.1:1")
	for _, bad := range []struct{ env, value string }{
		{"WOMPI_RATE_PER_SECOND", "fast"},
		// The key's age limit must stay inside Wompi's 24 h key lifetime.
		{"DISPATCHER_KEY_MAX_AGE", "24h"},
		{"DISPATCHER_KEY_MAX_AGE", "0s"},
		// A half-configured rail stops the worker at start.
		{"SMARTFASTPAY_CLIENT_SECRET", "s"},
		{"WEPAYOUT_NOTIFICATION_URL", "https://payouts.example.com/webhooks/wepayout"},
	} {
		t.Run(bad.env+"="+bad.value, func(t *testing.T) {
			t.Setenv(bad.env, bad.value)
			if code := run(nil); code != 2 {
				t.Fatalf("bad %s=%s: exit %d, want 2", bad.env, bad.value, code)
			}
		})
	}
}
