package railtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// RedirectStatuses are the answers a misconfigured base URL (http for
// https, an old host) may give to every call.
var RedirectStatuses = []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
	http.StatusTemporaryRedirect, http.StatusPermanentRedirect}

// Redirector starts a server that answers every call except those whose
// path is in pass (a token endpoint, say: pass answers them) with status and
// a Location to the same path on a second server, and returns its URL and
// the count of calls the second server received: a client that follows
// redirects sends them there, the payees' data of a create included.
func Redirector(t *testing.T, status int, pass map[string]http.HandlerFunc) (base string, followed *atomic.Int64) {
	t.Helper()
	followed = new(atomic.Int64)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(elsewhere.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := pass[r.URL.Path]; ok {
			h(w, r)
			return
		}
		http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, followed
}

// RedirectsNotFollowed checks, for each of RedirectStatuses, that a client
// whose base URL redirects (Redirector; pass as there) follows nothing and
// classes a create and a read Unauthorized (a wrong base URL: alert, never
// reject the payee). calls builds the client on base and makes both calls.
func RedirectsNotFollowed(t *testing.T, pass map[string]http.HandlerFunc, calls func(t *testing.T, base string) (create, read error)) {
	for _, status := range RedirectStatuses {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			base, followed := Redirector(t, status, pass)
			create, read := calls(t, base)
			if got := rail.ClassOf(create); got != rail.Unauthorized {
				t.Errorf("create answered %d: class %q (%v), want %q", status, got, create, rail.Unauthorized)
			}
			if got := rail.ClassOf(read); got != rail.Unauthorized {
				t.Errorf("read answered %d: class %q (%v), want %q", status, got, read, rail.Unauthorized)
			}
			if n := followed.Load(); n != 0 {
				t.Errorf("%d calls followed the redirect", n)
			}
		})
	}
}
