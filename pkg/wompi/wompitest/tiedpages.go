package wompitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// TiedPages is a transport, in front of Base, that answers the first
// Behind page reads of GET /payouts/{id}/transactions as offset pagination
// does over a sort key the payout's transactions tie on (a batch's
// transactions share one createdAt) when the ties come back in another
// order from one query to the next: page 1 is read with the transaction
// whose reference is Hide last, the later pages with it first. The listing
// then yields one transaction twice and never yields Hide, its total and
// page count unchanged. Reads counts the pages so answered. A payout that
// does not hold Hide is answered as it is.
type TiedPages struct {
	Base   http.RoundTripper
	Hide   string
	Behind int32
	Reads  atomic.Int32
}

// tiedPage is a page of the transactions listing, as TiedPages reads and
// rewrites it.
type tiedPage struct {
	Status int `json:"status,omitempty"`
	Data   struct {
		Page    int               `json:"page"`
		Limit   int               `json:"limit"`
		Total   int               `json:"total"`
		Pages   int               `json:"pages"`
		Records []json.RawMessage `json:"records"`
	} `json:"data"`
}

func (p *TiedPages) get(req *http.Request, page int) (*http.Response, tiedPage, error) {
	q := req.URL.Query()
	q.Set("page", strconv.Itoa(page))
	r := req.Clone(req.Context())
	r.URL.RawQuery = q.Encode()
	resp, err := p.Base.RoundTrip(r)
	if err != nil {
		return nil, tiedPage{}, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, tiedPage{}, err
	}
	var env tiedPage
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, tiedPage{}, err
	}
	return resp, env, nil
}

func (p *TiedPages) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/payouts/") ||
		!strings.HasSuffix(req.URL.Path, "/transactions") || p.Reads.Load() >= p.Behind {
		return p.Base.RoundTrip(req)
	}
	page, _ := strconv.Atoi(req.URL.Query().Get("page"))
	page = max(page, 1)
	// Every transaction, in the order the simulator lists them.
	resp, first, err := p.get(req, 1)
	if err != nil {
		return nil, err
	}
	all := first.Data.Records
	for n := 2; n <= first.Data.Pages; n++ {
		_, env, err := p.get(req, n)
		if err != nil {
			return nil, err
		}
		all = append(all, env.Data.Records...)
	}
	var others []json.RawMessage
	var hidden json.RawMessage
	for _, r := range all {
		if strings.Contains(string(r), `"reference":"`+p.Hide+`"`) {
			hidden = r
		} else {
			others = append(others, r)
		}
	}
	if hidden == nil || first.Data.Limit <= 0 {
		return p.Base.RoundTrip(req)
	}
	order := append(append([]json.RawMessage(nil), others...), hidden) // Hide last
	if page > 1 {
		order = append([]json.RawMessage{hidden}, others...) // Hide first
	}
	p.Reads.Add(1)
	out := first
	out.Data.Page = page
	from := min((page-1)*first.Data.Limit, len(order))
	out.Data.Records = order[from:min(from+first.Data.Limit, len(order))]
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	resp.Header.Del("Content-Length")
	return resp, nil
}
