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
	t.Setenv("WOMPI_RATE_PER_SECOND", "fast")
	if code := run(nil); code != 2 {
		t.Fatalf("bad WOMPI_RATE_PER_SECOND: exit %d, want 2", code)
	}
}
