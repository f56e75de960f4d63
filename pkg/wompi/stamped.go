package wompi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// maxStampedPages is the longest walk ItemsStamped stamps: a longer one is
// decoded whole at every poll, and its stamp is empty.
const maxStampedPages = 128

// ItemsStamped is rail.StampedItems: it walks GET
// /payouts/{id}/transactions as Items does, and skips the decoding while
// each page's bytes are those stamp names for that page number. A stamp
// is the client's page size, then a pageSum of each page the walk read:
// pages with the same bytes, asked with the same page number and size,
// decode the same and end the walk at the same page, so a walk whose
// every page matches, up to the stamp's last, reads what the walk that
// made the stamp read.
func (r *Rail) ItemsStamped(ctx context.Context, providerBatchID, stamp string) (items []rail.Payout, next string, unchanged bool, err error) {
	if err := required("payout id", providerBatchID); err != nil {
		return nil, "", false, railError("items", err)
	}
	limit := r.c.pageSizeOr(0)
	path := "/payouts/" + seg(providerBatchID) + "/transactions"
	head := "l" + strconv.Itoa(limit)
	var prev []string
	if h, rest, ok := strings.Cut(stamp, ","); ok && h == head {
		prev = strings.Split(rest, ",")
	}
	sums := []string{head}
	type keptPage struct {
		cl  call
		raw []byte
	}
	var kept []keptPage // pages read while they matched, not yet decoded
	matching, long := true, false
	decode := func(cl call, raw []byte) (Page[transactionItem], error) {
		p, err := decodePage[transactionItem](cl, raw)
		if err != nil {
			return p, railError("items", err)
		}
		for i := range p.Records {
			items = append(items, itemOf(&p.Records[i]))
		}
		return p, nil
	}
	for page := 1; page <= 1_000_000; page++ {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		q.Set("page", strconv.Itoa(page))
		cl := call{method: http.MethodGet, path: path, query: q}
		raw, _, err := r.c.do(ctx, cl)
		if err != nil {
			return nil, "", false, railError("items", err)
		}
		stamped := page <= maxStampedPages
		if stamped {
			sums = append(sums, pageSum(raw))
		} else {
			long = true
		}
		if matching && stamped && page <= len(prev) && prev[page-1] == sums[page] {
			if page == len(prev) {
				return nil, stamp, true, nil
			}
			// Not the last page at the stamped walk, nor now.
			kept = append(kept, keptPage{cl, raw})
			continue
		}
		if matching {
			matching = false
			for _, k := range kept {
				if _, err := decode(k.cl, k.raw); err != nil {
					return nil, "", false, err
				}
			}
			kept = nil
		}
		p, err := decode(cl, raw)
		if err != nil {
			return nil, "", false, err
		}
		if lastPage(len(p.Records), p.Pages, page, limit) {
			break
		}
	}
	if long {
		return items, "", false, nil
	}
	return items, strings.Join(sums, ","), false, nil
}

// pageSum is a SHA-256 (its first 16 bytes, in hex) of an answer's bytes
// but the value of its envelope's meta member: Wompi's meta carries a
// trace id per answer [sdk], and decoding a page reads nothing in it. An
// answer the scanner cannot read as an object is summed whole.
func pageSum(raw []byte) string {
	h := sha256.New()
	s := refScanner{b: raw}
	s.ws()
	from := 0
	ok := s.object(func(key []byte) bool {
		if string(key) == "meta" {
			h.Write(raw[from:s.i])
			if !s.skip(0) {
				return false
			}
			from = s.i
			return true
		}
		return s.skip(0)
	})
	if ok {
		h.Write(raw[from:])
	} else {
		h.Reset()
		h.Write(raw)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
