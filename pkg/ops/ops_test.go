package ops

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ops_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Inc()
	var h Health
	srv := NewServer("127.0.0.1:0", Handler(reg, &h))
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, time.Second, func(a net.Addr) { addrc <- a }) }()
	base := "http://" + (<-addrc).String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("readyz before ready = %d", code)
	}
	h.SetReady(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz when ready = %d", code)
	}
	h.SetDraining()
	if code, _ := get("/readyz"); code != 503 {
		t.Fatalf("readyz while draining = %d", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "ops_test_total 1") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics = %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLoggerAndMask(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "account", Mask("12345678901"))
	if !strings.Contains(buf.String(), `"account":"****8901"`) {
		t.Fatalf("log = %s", buf.String())
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil {
		t.Fatal("bad format accepted")
	}
	if _, err := NewLogger(&buf, "json", "loud"); err == nil {
		t.Fatal("bad level accepted")
	}
	if Mask("1234567") != "****" {
		t.Fatal("short value not fully masked")
	}
}
