package sfptest

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	sfp "github.com/wompi-payouts/pipeline/pkg/smartfastpay"
)

// payoutRec is one payout the simulator made.
type payoutRec struct {
	id                                               string
	seq                                              int64
	customerID, branch, name, email, document, phone string
	amount                                           int64
	callback                                         string
	txID                                             string
	status                                           string
	path                                             []string // statuses still to take
	nextAt                                           time.Time
	heapIdx                                          int
	createdAt, updatedAt                             time.Time
	paid                                             bool // reached success at least once
	credited                                         bool // its amount went back to the balance
}

// dueHeap orders the payouts that still move by their next step.
type dueHeap []*payoutRec

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].nextAt.Before(h[j].nextAt) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].heapIdx = i; h[j].heapIdx = j }
func (h *dueHeap) Push(x any)        { p := x.(*payoutRec); p.heapIdx = len(*h); *h = append(*h, p) }
func (h *dueHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.heapIdx = -1
	return p
}

// createWire is the body of POST /v1/payout. amount is raw: a number or a
// string.
type createWire struct {
	CustomerID  *string         `json:"customer_id"`
	Branch      *string         `json:"branch"`
	Name        *string         `json:"name"`
	Email       *string         `json:"email"`
	Document    *string         `json:"document"`
	Phone       *string         `json:"phone"`
	Amount      json.RawMessage `json:"amount"`
	Currency    *string         `json:"currency"`
	Country     *string         `json:"country"`
	Callback    *string         `json:"callback"`
	Transaction *struct {
		ID *string `json:"id"`
	} `json:"transaction"`
}

// Limits of the documented fields [seed].
const (
	MinAmountInCents = 200              // min 2
	MaxAmountInCents = 9_999_999_999    // decimal (10,2)
	maxCallbackLen   = 250              // callback 30-250
	minCallbackLen   = 30               //
	maxTxIDLen       = 255              // transaction.id 1-255
	maxNameLen       = 150              // name 3-150
	maxTextLen       = 255              // customer_id, branch, email
	documentLen      = 11               // Format 99999999999
	phoneLen         = 12               // Format 999999999999, 57 + 10
	phonePrefix      = "57"             //
	copCurrency      = "COP"            //
	colCountry       = "COL"            //
	_                = MaxAmountInCents // keep the table aligned
)

// validate returns the payout the body asks for and the messages of every
// field that fails (none: valid). Messages never echo a value.
func validate(cw *createWire) (p payoutRec, msgs []string) {
	str := func(name string, v *string, lo, hi int, required bool) string {
		if v == nil {
			if required {
				msgs = append(msgs, name+" is required")
			}
			return ""
		}
		n := utf8.RuneCountInString(*v)
		if n < lo || n > hi {
			msgs = append(msgs, fmt.Sprintf("%s must be %d to %d characters", name, lo, hi))
		}
		return *v
	}
	p.customerID = str("customer_id", cw.CustomerID, 1, maxTextLen, true)
	p.branch = str("branch", cw.Branch, 1, maxTextLen, false)
	p.name = str("name", cw.Name, 3, maxNameLen, true)
	// [ours]: the seed says email "min 30" but its own example is shorter:
	// a plausible address, at most 255, is required.
	p.email = str("email", cw.Email, 3, maxTextLen, true)
	if cw.Email != nil && !plausibleEmail(p.email) {
		msgs = append(msgs, "email must be a valid e-mail address")
	}
	if cw.Document == nil {
		msgs = append(msgs, "document is required")
	} else if p.document = *cw.Document; len(p.document) != documentLen || !digits(p.document) {
		msgs = append(msgs, "document must be 11 digits")
	}
	if cw.Phone == nil {
		msgs = append(msgs, "phone is required")
	} else if p.phone = *cw.Phone; len(p.phone) != phoneLen || !digits(p.phone) || !strings.HasPrefix(p.phone, phonePrefix) {
		msgs = append(msgs, "phone must be 12 digits: 57 and 10 digits")
	}
	switch a := bytes.TrimSpace(cw.Amount); {
	case len(a) == 0 || string(a) == "null":
		msgs = append(msgs, "amount is required")
	default:
		var amt sfp.Amount
		if err := json.Unmarshal(a, &amt); err != nil {
			msgs = append(msgs, "amount must be a decimal with a dot and at most two decimals")
		} else if p.amount = int64(amt); p.amount < MinAmountInCents {
			msgs = append(msgs, "amount must be at least 2")
		} else if p.amount > MaxAmountInCents {
			msgs = append(msgs, "amount must fit decimal (10,2)")
		}
	}
	if cw.Currency == nil || *cw.Currency != copCurrency {
		msgs = append(msgs, "currency must be COP")
	}
	if cw.Country == nil || *cw.Country != colCountry {
		msgs = append(msgs, "country must be COL (COP is only allowed for COL)")
	}
	p.callback = str("callback", cw.Callback, minCallbackLen, maxCallbackLen, true)
	if cw.Callback != nil {
		if u, err := url.Parse(p.callback); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			msgs = append(msgs, "callback must be an http(s) URL")
		}
	}
	if cw.Transaction == nil {
		msgs = append(msgs, "transaction.id is required")
	} else {
		p.txID = str("transaction.id", cw.Transaction.ID, 1, maxTxIDLen, true)
	}
	return p, msgs
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func plausibleEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || strings.ContainsAny(s, " \t\r\n,;<>") {
		return false
	}
	dom := s[at+1:]
	dot := strings.LastIndexByte(dom, '.')
	return dot > 0 && dot < len(dom)-1
}

// handleCreate is POST /v1/payout [seed]. It never deduplicates: a second
// POST with the same transaction.id makes a second payout, which pays.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	// Past maxBody the body is cut there; as before, its first JSON value
	// is what counts.
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	cw, plain := readCreateBody(body)
	var err error
	if !plain {
		cw = createWire{}
		err = json.NewDecoder(bytes.NewReader(body)).Decode(&cw)
	}
	if err != nil {
		s.refuse()
		s.writeError(w, http.StatusBadRequest, "body is not a JSON object")
		return
	}
	p, msgs := validate(&cw)
	if len(msgs) > 0 {
		s.refuse()
		s.writeError(w, http.StatusBadRequest, strings.Join(msgs, "; "))
		return
	}
	now := s.clock.Now()
	s.mu.Lock()
	s.nextID++
	p.seq = s.nextID
	p.id = strconv.FormatInt(p.seq, 10)
	p.status = sfp.StatusPending
	p.createdAt, p.updatedAt = now, now
	p.path = s.cfg.pathFor(p.phone)
	rec := &p
	s.payouts = append(s.payouts, rec)
	s.byID[rec.id] = rec
	s.byTx[rec.txID] = append(s.byTx[rec.txID], rec)
	s.balance -= rec.amount
	s.schedule(rec, now)
	var answer map[string]any
	var plainAnswer []byte
	if s.cfg.WrapCreate {
		answer = s.createAnswer(rec)
	} else {
		plainAnswer = s.appendCreateAnswer(make([]byte, 0, 128), rec)
	}
	dup := len(s.byTx[rec.txID]) > 1
	s.mu.Unlock()
	if dup {
		s.log.Warn("smartfastpaysim: a second payout for one transaction.id", "payoutId", rec.id)
	}
	if s.rollDropResponse() {
		panic(http.ErrAbortHandler) // committed; the answer is lost
	}
	if s.cfg.WrapCreate {
		s.writeData(w, http.StatusOK, answer)
		return
	}
	s.writeBytes(w, http.StatusOK, plainAnswer)
}

func (s *Server) refuse() {
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
}

// amount renders cents as the configured shape.
func (s *Server) amount(cents int64) any {
	a, _ := sfp.FormatAmount(cents)
	if s.cfg.NumericAmounts {
		return json.Number(a)
	}
	return a
}

// createAnswer is the create's answer [seed]; no fee [ours]. s.mu held.
func (s *Server) createAnswer(p *payoutRec) map[string]any {
	return map[string]any{"id": p.id, "status": p.status, "total": s.amount(p.amount), "subtotal": s.amount(p.amount),
		"exchange": s.amount(100), "fee": s.amount(0)}
}

const simTimeLayout = time.RFC3339

// record is a payout as GET /v1/payout/{id} and the listing show it
// [seed]. s.mu held.
func (s *Server) record(p *payoutRec) map[string]any {
	return map[string]any{"id": p.id, "customer_id": p.customerID, "transaction_id": p.txID, "amount": s.amount(p.amount),
		"currency": copCurrency, "status": p.status, "created_at": p.createdAt.UTC().Format(simTimeLayout),
		"updated_at": p.updatedAt.UTC().Format(simTimeLayout)}
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.byID[r.PathValue("id")]
	var rec map[string]any
	if ok {
		rec = s.record(p)
	}
	s.mu.Unlock()
	if !ok {
		s.writeError(w, http.StatusNotFound, "payout not found")
		return
	}
	s.writeData(w, http.StatusOK, rec)
}

// handleList is GET /v1/payouts [seed]: limit 1-40 (default 10 [ours]),
// page >= 1, sort item,(asc|desc) over id, created_at, updated_at or amount
// (default id,desc, the documented example), start_time and end_time
// (RFC 3339, over created_at, inclusive), customer_id, transaction_id (a
// comma list).
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var msgs []string
	intParam := func(name string, def, lo, hi int) int {
		v := q.Get(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			msgs = append(msgs, fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
		}
		return n
	}
	limit := intParam("limit", 10, 1, sfp.MaxPageSize)
	page := intParam("page", 1, 1, 9_999_999)
	timeParam := func(name string) time.Time {
		v := q.Get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			msgs = append(msgs, name+" must be an RFC 3339 date-time")
		}
		return t
	}
	start, end := timeParam("start_time"), timeParam("end_time")
	sortBy, dir := "id", "desc"
	if v := q.Get("sort"); v != "" {
		item, d, ok := strings.Cut(v, ",")
		if !ok || (d != "asc" && d != "desc") || !slices.Contains([]string{"id", "created_at", "updated_at", "amount"}, item) {
			msgs = append(msgs, "sort must be item,(asc|desc) with item id, created_at, updated_at or amount")
		}
		sortBy, dir = item, d
	}
	var txIDs []string
	if v := q.Get("transaction_id"); v != "" {
		txIDs = strings.Split(v, ",")
	}
	cust := q.Get("customer_id")
	if len(msgs) > 0 {
		s.writeError(w, http.StatusBadRequest, strings.Join(msgs, "; "))
		return
	}
	s.mu.Lock()
	sel := s.selectPage(listQuery{txIDs: txIDs, cust: cust, start: start, end: end, sortBy: sortBy, dir: dir, page: page, limit: limit})
	out := make([]map[string]any, 0, len(sel))
	for _, p := range sel {
		out = append(out, s.record(p))
	}
	s.mu.Unlock()
	s.writeData(w, http.StatusOK, out)
}

// listQuery is a listing's filters, order and page.
type listQuery struct {
	txIDs      []string
	cust       string
	start, end time.Time
	sortBy     string // id, created_at, updated_at, amount
	dir        string // asc, desc
	page       int
	limit      int
}

// selectPage returns the payouts of one page of a listing (s.mu held). A
// listing by id without transaction ids (a recovery's, page after page
// over the whole ledger) walks the ledger, which is in id order, instead of
// copying and sorting it for every page (selectPageSorted); the two agree
// (TestSelectPageMatchesSorted).
func (s *Server) selectPage(q listQuery) []*payoutRec {
	if len(q.txIDs) > 0 || q.sortBy != "id" {
		return s.selectPageSorted(q)
	}
	skip := (q.page - 1) * q.limit
	var out []*payoutRec
	n := len(s.payouts)
	for k := range n {
		p := s.payouts[k]
		if q.dir == "desc" {
			p = s.payouts[n-1-k]
		}
		if (q.cust != "" && p.customerID != q.cust) || (!q.start.IsZero() && p.createdAt.Before(q.start)) ||
			(!q.end.IsZero() && p.createdAt.After(q.end)) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		out = append(out, p)
		if len(out) == q.limit {
			break
		}
	}
	return out
}

// selectPageSorted is selectPage for any listing: filter, sort, page.
func (s *Server) selectPageSorted(q listQuery) []*payoutRec {
	txIDs, cust, start, end, sortBy, dir, page, limit := q.txIDs, q.cust, q.start, q.end, q.sortBy, q.dir, q.page, q.limit
	var sel []*payoutRec
	if len(txIDs) > 0 {
		seen := map[string]bool{}
		for _, id := range txIDs {
			if !seen[id] {
				seen[id] = true
				sel = append(sel, s.byTx[id]...)
			}
		}
	} else {
		sel = slices.Clone(s.payouts)
	}
	sel = slices.DeleteFunc(sel, func(p *payoutRec) bool {
		return (cust != "" && p.customerID != cust) || (!start.IsZero() && p.createdAt.Before(start)) ||
			(!end.IsZero() && p.createdAt.After(end))
	})
	key := func(p *payoutRec) int64 {
		switch sortBy {
		case "created_at":
			return p.createdAt.UnixNano()
		case "updated_at":
			return p.updatedAt.UnixNano()
		case "amount":
			return p.amount
		}
		return p.seq
	}
	slices.SortStableFunc(sel, func(a, b *payoutRec) int {
		c := cmpInt(key(a), key(b))
		if c == 0 {
			c = cmpInt(a.seq, b.seq)
		}
		if dir == "desc" {
			c = -c
		}
		return c
	})
	from := min((page-1)*limit, len(sel))
	to := min(from+limit, len(sel))
	return sel[from:to]
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// handleBalance is GET /balance?currency=COP [sdk]; the answer's shape is
// ours: {"requestId", "data": {"currency", "balance"}}.
func (s *Server) handleBalance(w http.ResponseWriter, r *http.Request) {
	if c := r.URL.Query().Get("currency"); c != copCurrency {
		s.writeError(w, http.StatusBadRequest, "currency must be COP")
		return
	}
	s.mu.Lock()
	b := s.balance
	s.mu.Unlock()
	s.writeData(w, http.StatusOK, map[string]any{"currency": copCurrency, "balance": s.amount(b)})
}

// schedule queues p's next step, if any. s.mu held.
func (s *Server) schedule(p *payoutRec, from time.Time) {
	if len(p.path) == 0 {
		if p.heapIdx >= 0 && p.heapIdx < len(s.due) && s.due[p.heapIdx] == p {
			heap.Remove(&s.due, p.heapIdx)
		}
		return
	}
	d := s.cfg.StepDelay
	if p.status == sfp.StatusSuccess {
		d = s.cfg.ReversalDelay
	}
	p.nextAt = from.Add(d)
	if p.heapIdx >= 0 && p.heapIdx < len(s.due) && s.due[p.heapIdx] == p {
		heap.Fix(&s.due, p.heapIdx)
		return
	}
	heap.Push(&s.due, p)
}

// setStatus moves p to st at time at and queues its callback. s.mu held.
func (s *Server) setStatus(p *payoutRec, st string, at time.Time) hookEvent {
	p.status, p.updatedAt = st, at
	switch st {
	case sfp.StatusSuccess:
		p.paid = true
	case sfp.StatusFailed, sfp.StatusRefunded, sfp.StatusReturned:
		if !p.credited {
			p.credited = true
			s.balance += p.amount
		}
	}
	return s.callbackEvent(p)
}

// Tick moves every payout whose next step is due and sends their
// callbacks. It returns how many steps it took.
func (s *Server) Tick() int {
	now := s.clock.Now()
	var evs []hookEvent
	s.mu.Lock()
	for len(s.due) > 0 && !s.due[0].nextAt.After(now) {
		p := s.due[0]
		st := p.path[0]
		p.path = p.path[1:]
		evs = append(evs, s.setStatus(p, st, p.nextAt))
		s.schedule(p, p.nextAt)
	}
	s.mu.Unlock()
	s.hooks.enqueue(evs...)
	return len(evs)
}

// Advance moves a ManualClock by d, then ticks. It panics on another
// clock.
func (s *Server) Advance(d time.Duration) int {
	s.clock.(*ManualClock).Advance(d)
	return s.Tick()
}

// ErrNoPayout is returned by SetStatus and SignedWebhook for an id with no
// payout.
var ErrNoPayout = errors.New("sfptest: no payout for that transaction.id")

// latest returns the last payout made for our id. s.mu held.
func (s *Server) latest(txID string) (*payoutRec, bool) {
	ps := s.byTx[txID]
	if len(ps) == 0 {
		return nil, false
	}
	return ps[len(ps)-1], true
}

// SetStatus moves the last payout made for our id to a provider status
// (any text: an unknown one tests the client's mapping), ends its automatic
// path, and sends its callback (railtest.Sim).
func (s *Server) SetStatus(txID, status string) error {
	if status == "" {
		return errors.New("sfptest: empty status")
	}
	now := s.clock.Now()
	s.mu.Lock()
	p, ok := s.latest(txID)
	if !ok {
		s.mu.Unlock()
		return ErrNoPayout
	}
	ev := s.setStatus(p, status, now)
	p.path = nil
	s.schedule(p, now)
	s.mu.Unlock()
	s.hooks.enqueue(ev)
	return nil
}

// Status returns the status of the last payout made for our id.
func (s *Server) Status(txID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.latest(txID)
	if !ok {
		return "", false
	}
	return p.status, true
}

// Balance returns the COP balance in cents.
func (s *Server) Balance() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balance
}

// Pending returns how many payouts still have a step to take.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.due)
}
