package testenv

import (
	"net/http"
	"sync"
)

// CallCounter is an http.RoundTripper that counts the calls it passes on
// (to Next, http.DefaultTransport when nil) per "METHOD /path". Safe for
// concurrent use; the zero value is ready.
type CallCounter struct {
	Next http.RoundTripper

	mu sync.Mutex
	n  map[string]int
}

// RoundTrip implements http.RoundTripper.
func (c *CallCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	next := c.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}

// Count returns how many calls went to "METHOD /path".
func (c *CallCounter) Count(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}
