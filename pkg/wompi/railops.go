package wompi

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// What the dispatcher needs of Wompi besides rail.BatchPayouts
// (rail.BatchRail): GET /health, GET /limits and GET /payouts for the seed
// of its daily budgets, the bank directory of GET /banks, and the cheap
// walk of a batch's transaction ids.

// deferralReason is the pipeline's reason for a code that refuses a batch
// for now: EXC_008 waits for a top-up, DAILY_BATCH_LIMIT for the next day's
// batch budget, EXC_017 for the next day's limit. "" for any other code.
func deferralReason(code string) payout.Reason {
	switch code {
	case CodeInsufficientBalance:
		return payout.ReasonInsufficientBalance
	case CodeDailyBatchLimit:
		return payout.ReasonBatchBudget
	case CodeDailyLimit:
		return payout.ReasonDailyLimit
	}
	return ""
}

var (
	// five digits: Validate takes a CC of 5 digits; a transaction's
	// index (at most 9,999) stays readable.
	longDigits = regexp.MustCompile(`\d{5,}`)
	emailLike  = regexp.MustCompile(`[^\s@,;:"'<>()\[\]]+@[^\s@,;:"'<>()\[\]]+`)
)

// maskText hides what looks like an account number or a legal id (five
// digits or more: all but the last four masked) or an email in a message
// of Wompi's. httpError applies it to every message an answer carries,
// after masking the values the call sent (sentValues: a legal id with
// letters, a short account number, a name, which no heuristic can tell),
// so that no text of an *Error (its Error(), printed by every log line
// that logs it, and by a *rail.Error that wraps it) quotes the payee's
// data back; it changes nothing already masked.
func maskText(s string) string {
	s = emailLike.ReplaceAllString(s, "***@***")
	return longDigits.ReplaceAllStringFunc(s, func(d string) string {
		if len(d) <= 8 {
			return "****"
		}
		return "****" + d[len(d)-4:]
	})
}

// clipText cuts s to at most n bytes, on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxWords bounds the provider's words the rail carries into an event (a
// failure's message, a batch's status message): an event that passed the
// status topic's max.message.bytes could never be written, and the status
// never emitted.
const maxWords = 500

// maskedWords renders words Wompi puts on a status (a transaction's
// failureReason message, a batch's statusMessage) for an event: masked and
// cut to maxWords bytes (maskClip), valid UTF-8.
func maskedWords(s string) string { return strings.ToValidUTF8(maskClip(s, maxWords), "") }

// maskClip is maskText of s cut to at most n bytes. Only the head of a long
// text is read, its cut dropping the digits it ends in, so that no digit
// run the cut ends keeps its head in clear.
func maskClip(s string, n int) string {
	if len(s) > 4*n {
		s = strings.TrimRight(s[:4*n], "0123456789")
	}
	return clipText(maskText(s), n)
}

// maskClip is maskClip of text with the values of s masked first (see
// sentValues); a nil s masks no sent value.
func (s *sentValues) maskClip(text string, n int) string {
	return maskClip(s.mask(text, 4*n), n)
}

// maskedMessage renders Wompi's error messages for an event or a log
// (rail.Error.Message, a REJECTED event's reasonMessage): joined, with
// anything that looks like an account number or a legal id (five digits or
// more: all but the last four masked) or an email masked, and cut to 500
// bytes. An answer without messages reads "HTTP <status> <code>". The
// values the call sent are already masked in we's Messages and Code
// (httpError).
func maskedMessage(we *Error) string {
	if we == nil {
		return ""
	}
	s := strings.Join(we.Messages, "; ")
	if s == "" {
		s = fmt.Sprintf("HTTP %d %s", we.HTTPStatus, we.Code)
	}
	s = maskText(s)
	if len(s) > 500 {
		s = s[:500]
	}
	return strings.ToValidUTF8(s, "")
}

// Limits returns Wompi's published daily limits: DefaultDailyLimitCents per
// account and DailyBatchCap batches per Bogota day.
func (r *Rail) Limits() rail.DailyLimits {
	return rail.DailyLimits{AmountInCents: DefaultDailyLimitCents, Batches: DailyBatchCap}
}

// Health returns GET /health's status: HEALTHY, PARTIAL_OUTAGE,
// UNHEALTHY, or another word Wompi uses, as it says it. An error status
// whose answer carries a known status is that status (Client.Health).
func (r *Rail) Health(ctx context.Context) (rail.Health, error) {
	h, err := r.c.Health(ctx)
	if err != nil {
		return "", railError("health", err)
	}
	return rail.Health(h.Status), nil
}

// errNegativeUsage: GET /limits answered a negative figure.
var errNegativeUsage = errors.New("wompi: GET /limits answered a negative consumption or batch count")

// UsageOn returns GET /limits for the Bogota day. Only the client-wide
// dailyConsumed of TODAY is published [sdk]: without the simulator's
// extras [ours] (?date=, accounts[], numberOfBatchesConsumed, date) the
// answer is today's (Usage.Day ""), whatever day was asked.
func (r *Rail) UsageOn(ctx context.Context, day string) (rail.Usage, error) {
	lim, err := r.c.LimitsOn(ctx, payout.Day(day).StartIn(rail.Location(rail.Wompi)))
	if err != nil {
		return rail.Usage{}, railError("usage", err)
	}
	u := rail.Usage{Day: lim.Date, ConsumedInCents: lim.Limits.DailyConsumed, Batches: int(lim.NumberOfBatchesConsumed)}
	for _, a := range lim.Accounts {
		if a.DailyConsumed < 0 {
			// An account's figure that cannot be true is left out: its
			// account is seeded from the client-wide figure, an upper
			// bound, as when the answer names no accounts.
			continue
		}
		u.Accounts = append(u.Accounts, rail.AccountUsage{AccountID: a.AccountID, ConsumedInCents: a.DailyConsumed,
			DailyLimitInCents: max(0, a.DailyLimit)}) // a limit of 0 is none known
	}
	if u.ConsumedInCents < 0 || u.Batches < 0 {
		// A negative figure is Wompi's mistake, not the batch's: the
		// budget refuses to seed from it (ratelimit.ErrInvalid, which ends
		// a batch for good). Retried, as an answer that cannot be read;
		// its status is the answer's (200), so that the call's metrics
		// count it apart from a transport failure.
		return rail.Usage{}, &rail.Error{Rail: rail.Wompi, Op: "usage", HTTPStatus: http.StatusOK, Class: rail.Retryable,
			Message: "GET /limits answered a negative consumption or batch count", Err: errNegativeUsage}
	}
	return u, nil
}

// BatchesListedOn returns the number of batches GET /payouts lists with
// fromDate = toDate = day [doc filters] (one page of one: its total), which
// Wompi may date by creation (the day a batch is sent, as the cap counts)
// or by dispersion (unpublished).
func (r *Rail) BatchesListedOn(ctx context.Context, day string) (int, error) {
	p, err := r.c.PayoutsPage(ctx, PayoutsFilter{FromDate: day, ToDate: day, Limit: 1})
	if err != nil {
		return 0, railError("list", err)
	}
	return max(p.Total, len(p.Records)), nil
}

// itemRefsPage is the page size of ItemRefs.
const itemRefsPage = 1000

// ItemRefs walks GET /payouts/{id}/transactions in pages of 1,000,
// decoding only each transaction's id, reference (our requestId) and
// status.
func (r *Rail) ItemRefs(ctx context.Context, providerBatchID string) iter.Seq2[rail.ItemRef, error] {
	return func(yield func(rail.ItemRef, error) bool) {
		for t, err := range r.c.PayoutTransactionRefs(ctx, providerBatchID, TransactionsFilter{Limit: itemRefsPage}) {
			if err != nil {
				yield(rail.ItemRef{}, railError("items", err))
				return
			}
			if !yield(rail.ItemRef{ID: t.Reference, ProviderID: t.ID, Status: ItemStatusOf(t.Status),
				ProviderStatus: string(t.Status)}, nil) {
				return
			}
		}
	}
}

// BankIDs resolves bank codes to Wompi bankIds through the bank directory
// (see rail.BankDirectory): GET /banks is read under bg, as observed op
// "banks".
func (r *Rail) BankIDs(ctx context.Context, bg rail.Background, codes []string) ([]string, error) {
	return r.dir.resolve(ctx, bg, codes)
}

// bankDirectory is the cached GET /banks table: bank code -> bankId. Safe
// for concurrent use. The mutex guards the cached table only: GET /banks
// runs outside it, one at a time (a single flight that every caller who
// needs it joins), so a slow or hanging Wompi never blocks a batch that
// the cached table can serve.
type bankDirectory struct {
	c   *Client
	ttl time.Duration // age at which the table is read again
	now func() time.Time

	mu      sync.Mutex
	byCode  map[string]string // replaced whole by a refresh, never mutated
	fetched time.Time
	missAt  time.Time   // last refresh caused by an unknown code
	flight  *bankFlight // the GET /banks in progress, if any
}

// bankFlight is one GET /banks; done is closed when it ended, err is its
// outcome (read after done).
type bankFlight struct {
	done chan struct{}
	err  error
}

// missRefreshEvery bounds refreshes triggered by unknown codes.
func (d *bankDirectory) missRefreshEvery() time.Duration {
	return min(time.Minute, d.ttl)
}

// resolve returns the bankId of each code ("" for an unknown one). A
// missing table is fetched first (the caller waits); a stale one is served
// while a refresh runs in the background. An unknown code waits for a
// refresh (the one in flight, or a new one at most once a minute) before it
// is reported unknown. An error is returned only when no table is known.
func (d *bankDirectory) resolve(ctx context.Context, bg rail.Background, codes []string) ([]string, error) {
	d.mu.Lock()
	table := d.byCode
	var wait *bankFlight
	switch {
	case table == nil:
		wait = d.startLocked(bg)
	case d.now().Sub(d.fetched) > d.ttl:
		d.startLocked(bg) // serve the last good table meanwhile
	}
	d.mu.Unlock()
	if wait != nil {
		if err := d.await(ctx, wait); err != nil {
			return nil, err
		}
		if table = d.table(); table == nil {
			return nil, wait.err
		}
	}

	ids := make([]string, len(codes))
	missing := false
	for i, c := range codes {
		ids[i] = table[c]
		missing = missing || ids[i] == ""
	}
	if !missing || wait != nil {
		// A table this call waited for is as fresh as it gets.
		return ids, nil
	}
	d.mu.Lock()
	wait = d.flight
	if wait == nil && d.now().Sub(d.missAt) > d.missRefreshEvery() {
		d.missAt = d.now()
		wait = d.startLocked(bg)
	}
	d.mu.Unlock()
	if wait == nil {
		return ids, nil
	}
	if err := d.await(ctx, wait); err != nil {
		return nil, err
	}
	table = d.table()
	for i, c := range codes {
		if ids[i] == "" {
			ids[i] = table[c]
		}
	}
	return ids, nil
}

// table returns the current table.
func (d *bankDirectory) table() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byCode
}

// await waits for f, or for ctx: the caller's batch may stop waiting, the
// refresh goes on for the others.
func (d *bankDirectory) await(ctx context.Context, f *bankFlight) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// startLocked returns the refresh in flight, or starts one under bg. d.mu
// is held. The refresh is bound by bg (its Timeout and Life), not by the
// context of the caller that happened to start it.
func (d *bankDirectory) startLocked(bg rail.Background) *bankFlight {
	if d.flight != nil {
		return d.flight
	}
	f := &bankFlight{done: make(chan struct{})}
	d.flight = f
	bg.Go(func() {
		m, err := d.fetch(bg)
		d.mu.Lock()
		if err == nil {
			d.byCode, d.fetched = m, d.now()
		}
		d.flight = nil
		d.mu.Unlock()
		f.err = err
		close(f.done)
	})
	return f
}

// fetch reads GET /banks into a code -> bankId table. It holds no lock.
func (d *bankDirectory) fetch(bg rail.Background) (map[string]string, error) {
	start := time.Now()
	ctx, cancel := bg.Life, context.CancelFunc(func() {})
	if bg.Timeout > 0 {
		ctx, cancel = context.WithTimeout(bg.Life, bg.Timeout)
	}
	banks, err := d.c.Banks(ctx)
	cancel()
	rerr := railError("banks", err)
	if bg.Observe != nil {
		bg.Observe("banks", start, rerr)
	}
	if err != nil {
		return nil, rerr
	}
	m := make(map[string]string, len(banks))
	for _, b := range banks {
		if b.Code != "" && b.ID != "" {
			m[b.Code] = b.ID
		}
	}
	return m, nil
}
