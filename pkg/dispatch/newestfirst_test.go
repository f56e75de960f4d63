package dispatch

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
)

// newestFirstLag serves a provider's full listing newest first, as payment
// APIs commonly list (none of ours publishes its order), from the
// simulator's listing; once on is set, the first read of page behind (2
// when 0) is answered by a copy one record behind: it lacks the newest
// record, so every record of it sits one place earlier than on the
// up-to-date pages (page 2 behind), or every record of the later pages one
// place later than on it (page 1 behind).
type newestFirstLag struct {
	on     *atomic.Bool
	behind int
	served atomic.Int32
}

// records reverses the whole listing (newest first) and, on the first read
// of the page behind once on is set, leaves the newest record out.
func (s *newestFirstLag) records(all []json.RawMessage, page int) []json.RawMessage {
	recs := slices.Clone(all)
	slices.Reverse(recs)
	if s.on.Load() && page == cmp.Or(s.behind, 2) && len(recs) > 0 && s.served.Add(1) == 1 {
		recs = recs[1:] // a copy behind the newest record
	}
	return recs
}

// fetchWhole asks the simulator for the listing req asks for, whole (its
// query with set's values), and decodes the answer into v.
func fetchWhole(req *http.Request, set map[string]string, v any) error {
	all := *req.URL
	q := all.Query()
	for k, x := range set {
		q.Set(k, x)
	}
	all.RawQuery = q.Encode()
	in, err := http.NewRequestWithContext(req.Context(), http.MethodGet, all.String(), nil)
	if err != nil {
		return err
	}
	in.Header = req.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
