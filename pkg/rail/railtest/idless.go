package railtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// StripListedIDs rewrites a provider's listing answer, a JSON array or an
// object whose "data" is one (the single-payout rails' shapes), taking the
// provider's own "id" out of every item hide picks (nil: every item). It
// reports whether it took any out; a body that is no listing comes back
// unchanged. What a provider that lists a payout without its id would
// answer.
func StripListedIDs(body []byte, hide func(item map[string]any) bool) ([]byte, bool) {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return body, false
	}
	items, _ := doc.([]any)
	if m, ok := doc.(map[string]any); ok {
		items, _ = m["data"].([]any)
	}
	stripped := false
	for _, it := range items {
		o, ok := it.(map[string]any)
		if _, has := o["id"]; ok && has && (hide == nil || hide(o)) {
			delete(o, "id")
			stripped = true
		}
	}
	if !stripped {
		return body, false
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return body, false
	}
	return out, true
}

// NamesAny picks a listed item that holds one of ids as the value of one
// of its top-level keys: our id, whatever the rail calls it
// (transaction_id, invoice).
func NamesAny(ids ...string) func(map[string]any) bool {
	return func(o map[string]any) bool {
		for _, v := range o {
			for _, id := range ids {
				if s, ok := v.(string); ok && s == id {
					return true
				}
			}
		}
		return false
	}
}

// RewriteBody replaces resp's body with what rewrite makes of it, and
// reports whether rewrite changed it. resp's body is read whole and
// closed.
func RewriteBody(resp *http.Response, rewrite func([]byte) ([]byte, bool)) (bool, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	body, changed := rewrite(body)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	resp.Header.Del("Content-Length")
	return changed, nil
}
