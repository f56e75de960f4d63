package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-help"}, func(string) string { return "" }, io.Discard, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, v := range []string{"SMARTFASTPAYSIM_ADDR, default 127.0.0.1:8091", "SMARTFASTPAY_CLIENT_ID, default (built-in test value)",
		"SMARTFASTPAY_WEBHOOK_SECRET", "SMARTFASTPAYSIM_DROP_RESPONSE_RATE", "SMARTFASTPAYSIM_TOKEN_TTL"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("-help lacks %q", v)
		}
	}
}

func TestBadValueNamesItsVariable(t *testing.T) {
	env := map[string]string{"SMARTFASTPAYSIM_ERROR_RATE": "abc"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "SMARTFASTPAYSIM_ERROR_RATE") {
		t.Fatalf("%v", err)
	}
	env = map[string]string{"SMARTFASTPAY_CLIENT_SECRET_FILE": "/nonexistent/secret"}
	err = run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "SMARTFASTPAY_CLIENT_SECRET_FILE") {
		t.Fatalf("%v", err)
	}
}

// TestServes: the binary serves the API with the configured credentials
// and the debug endpoints, and drains on cancel.
func TestServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	env := map[string]string{"SMARTFASTPAYSIM_ADDR": "127.0.0.1:0", "SMARTFASTPAY_CLIENT_ID": "cid", "SMARTFASTPAY_CLIENT_SECRET": "csecret",
		"SMARTFASTPAYSIM_ERROR_RATE": "0"}
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard, func(u string) { urls <- u })
	}()
	var u string
	select {
	case u = <-urls:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("not serving")
	}
	c, err := sfp.New(sfp.Config{BaseURL: u, ClientID: "cid", ClientSecret: "csecret"})
	if err != nil {
		t.Fatal(err)
	}
	if found, err := c.Find(ctx, "req-1"); err != nil || len(found) != 0 {
		t.Fatal(found, err)
	}
	wrong, _ := sfp.New(sfp.Config{BaseURL: u, ClientID: "cid", ClientSecret: "other"})
	if _, err := wrong.Find(ctx, "req-1"); rail.ClassOf(err) != rail.Unauthorized {
		t.Fatalf("wrong secret: %v", err)
	}
	resp, err := http.Post(u+"/_sim/faults", "application/json", strings.NewReader(`{"errorRate":1}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	resp.Body.Close()
	if _, err := c.Find(ctx, "req-1"); rail.ClassOf(err) != rail.Retryable {
		t.Fatalf("after errorRate 1: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no drain")
	}
}
