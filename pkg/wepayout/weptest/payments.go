package weptest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// Status names [seed, doc].
var statusNames = map[int]string{1: "Created", 2: "Processing", 3: "Paid", 4: "Failed", 5: "Rejected", 6: "Cancelled", 7: "Awaiting"}

func statusName(id int) string {
	if n, ok := statusNames[id]; ok {
		return n
	}
	return "Unknown"
}

func finalStatus(id int) bool { return id >= 3 && id <= 6 }

type bankAccount struct {
	BankCode    string `json:"bank_code"`
	Branch      string `json:"branch"`
	BranchDigit string `json:"branch_digit,omitempty"`
	Account     string `json:"account"`
	Digit       string `json:"account_digit"`
	Type        string `json:"account_type"`
}

// payment is one accepted POST.
type payment struct {
	id              int64
	invoice         string
	amountText      string // the amount exactly as sent: it signs webhooks
	cents           int64
	description     string
	notificationURL string
	name            string
	docType         string
	docNumber       string
	pixKey          string
	bank            *bankAccount
	status          int
	detail          *Detail
	endToEnd        string
	createdAt       time.Time
	updatedAt       time.Time

	outcome Outcome
	step    int       // next index into outcome.Path
	nextAt  time.Time // zero: no step pending
}

// createBody is POST /v2/payout/payments [doc].
type createBody struct {
	PaymentMethod   string           `json:"payment_method"`
	Currency        string           `json:"currency"`
	Country         string           `json:"country"`
	Amount          json.RawMessage  `json:"amount"`
	Invoice         string           `json:"invoice"`
	Beneficiary     *beneficiaryWire `json:"beneficiary"`
	PIX             *pixWire         `json:"pix"`
	BankCode        string           `json:"bank_code"`
	BankBranch      string           `json:"bank_branch"`
	BankBranchDigit string           `json:"bank_branch_digit"`
	Account         string           `json:"account"`
	AccountDigit    string           `json:"account_digit"`
	AccountType     string           `json:"account_type"`
	MerchantID      json.RawMessage  `json:"merchant_id"`
	Description     string           `json:"description"`
	NotificationURL string           `json:"notification_url"`
	Purpose         string           `json:"purpose"`
}

type beneficiaryWire struct {
	Name     string        `json:"name"`
	Document *documentWire `json:"document"`
}

type documentWire struct {
	Type   string `json:"type"`
	Number string `json:"number"`
}

type pixWire struct {
	Key string `json:"pix_key"`
}

// parseAmount reads a JSON number of decimal reais ("50.34") from its text,
// never through a float: cents, or an error message.
func parseAmount(raw json.RawMessage) (string, int64, string) {
	t := strings.TrimSpace(string(raw))
	if t == "" || t == "null" {
		return "", 0, "The amount field is required."
	}
	if t[0] == '"' {
		return "", 0, "The amount must be a number."
	}
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" || len(frac) > 2 || (strings.Contains(t, ".") && frac == "") || !digits(whole) || (frac != "" && !digits(frac)) {
		return "", 0, "The amount must be a positive number with at most two decimals."
	}
	if len(whole) > 12 {
		return "", 0, "The amount is too large."
	}
	var c int64
	for i := 0; i < len(whole); i++ {
		c = c*10 + int64(whole[i]-'0')
	}
	c *= 100
	if len(frac) >= 1 {
		c += int64(frac[0]-'0') * 10
	}
	if len(frac) == 2 {
		c += int64(frac[1] - '0')
	}
	if c <= 0 {
		return "", 0, "The amount must be at least 0.01."
	}
	return t, c, ""
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validate checks a create body against the documented fields [doc] and
// returns the payment it describes, or the 400 message. Messages never
// echo the payee's data.
func (s *Server) validate(b *createBody) (*payment, string) {
	if b.PaymentMethod != "PIX" {
		return nil, "The payment method must be PIX."
	}
	if b.Currency != "BRL" {
		return nil, "The selected currency is invalid."
	}
	if b.Country != "BR" {
		return nil, "The selected country is invalid."
	}
	text, cents, msg := parseAmount(b.Amount)
	if msg != "" {
		return nil, msg
	}
	if b.Invoice == "" || len(b.Invoice) > 100 {
		return nil, "The invoice field is required (at most 100 characters)."
	}
	if b.Beneficiary == nil {
		return nil, "The beneficiary field is required."
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(b.Beneficiary.Name)); n == 0 || n > wepayout.MaxNameLength {
		return nil, "The beneficiary name is required and may not be greater than 100 characters."
	}
	doc := b.Beneficiary.Document
	if doc == nil {
		return nil, "The beneficiary document is required."
	}
	switch doc.Type {
	case "CPF":
		if !cpfOK(doc.Number) {
			return nil, "The beneficiary document number is not a valid CPF."
		}
	case "CNPJ":
		if !cnpjOK(doc.Number) {
			return nil, "The beneficiary document number is not a valid CNPJ."
		}
	default:
		return nil, "The beneficiary document type must be CPF or CNPJ."
	}
	bankGiven := b.BankCode != "" || b.BankBranch != "" || b.BankBranchDigit != "" || b.Account != "" || b.AccountDigit != "" || b.AccountType != ""
	p := &payment{invoice: b.Invoice, amountText: text, cents: cents, description: b.Description,
		notificationURL: b.NotificationURL, name: b.Beneficiary.Name, docType: doc.Type, docNumber: doc.Number}
	switch {
	case b.PIX != nil && bankGiven:
		return nil, "Send either pix or the bank account fields, not both."
	case b.PIX != nil:
		if k := b.PIX.Key; k == "" || len(k) > 77 || strings.ContainsAny(k, " \t\r\n") {
			return nil, "The pix key is invalid."
		}
		p.pixKey = b.PIX.Key
	case bankGiven:
		switch {
		case len(b.BankCode) != 3 || !digits(b.BankCode):
			return nil, "The bank code must be 3 digits."
		case !digits(b.BankBranch) || len(b.BankBranch) > 5:
			return nil, "The bank branch is invalid."
		case b.BankBranchDigit != "" && len(b.BankBranchDigit) != 1:
			return nil, "The bank branch digit is invalid."
		case !digits(b.Account) || len(b.Account) > 20:
			return nil, "The account is invalid."
		case b.AccountDigit == "" || len(b.AccountDigit) > 2:
			return nil, "The account digit is invalid."
		case b.AccountType != "checking" && b.AccountType != "savings":
			return nil, "The account type must be checking or savings."
		}
		p.bank = &bankAccount{b.BankCode, b.BankBranch, b.BankBranchDigit, b.Account, b.AccountDigit, b.AccountType}
	default:
		return nil, "Send either pix or the bank account fields."
	}
	if len(b.MerchantID) > 0 && string(b.MerchantID) != "null" {
		m := strings.Trim(string(b.MerchantID), `"`)
		if m != strconv.FormatInt(s.cfg.MerchantID, 10) {
			return nil, "The selected merchant id is invalid."
		}
	}
	if b.NotificationURL != "" {
		u, err := url.Parse(b.NotificationURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, "The notification url must be a valid URL."
		}
	}
	return p, ""
}

// ruleDigits are the last two decimal digits of the PIX key or the
// account number; "00" when there are fewer than two.
func (p *payment) ruleDigits() string {
	src := p.pixKey
	if p.bank != nil {
		src = p.bank.Account
	}
	var d []byte
	for i := len(src) - 1; i >= 0 && len(d) < 2; i-- {
		if src[i] >= '0' && src[i] <= '9' {
			d = append([]byte{src[i]}, d...)
		}
	}
	if len(d) < 2 {
		return "00"
	}
	return string(d)
}

func (s *Server) outcomeOf(p *payment) Outcome {
	d := p.ruleDigits()
	for _, r := range s.cfg.Rules {
		if r.Digits == d {
			return r.Outcome
		}
	}
	return *s.cfg.Default
}

// stepDelay is StepDelay plus a jitter derived from the payment id and the
// step: deterministic.
func (s *Server) stepDelay(p *payment) time.Duration {
	d := s.cfg.StepDelay
	if j := s.cfg.StepJitter; j > 0 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d/%d", p.id, p.step)
		d += time.Duration(h.Sum64() % uint64(j))
	}
	return d
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return
	}
	b, plain := readCreateBody(raw)
	if !plain {
		b = createBody{}
		if err := json.Unmarshal(raw, &b); err != nil {
			writeMessage(w, http.StatusBadRequest, "The request body is not valid JSON.")
			return
		}
	}
	p, msg := s.validate(&b)
	if msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	if r.Context().Err() != nil {
		return // the client left during the injected latency: nothing applied
	}
	now := s.clock.Now()
	s.mu.Lock()
	p.id = s.nextID
	s.nextID++
	p.status, p.createdAt, p.updatedAt = wepayout.StatusCreated, now, now
	p.outcome = s.outcomeOf(p)
	p.nextAt = now.Add(s.stepDelay(p))
	s.payments = append(s.payments, p)
	s.active = append(s.active, p)
	if len(s.active) == 1 || p.nextAt.Before(s.due) {
		s.due = p.nextAt
	}
	s.byID[p.id] = p
	s.byInvoice[p.invoice] = append(s.byInvoice[p.invoice], p)
	s.balance -= p.cents
	answer := s.appendCreateView(make([]byte, 0, 192), p)
	s.mu.Unlock()
	s.log.Info("wepayoutsim: payment created", "id", p.id, "accepted", s.Accepted(p.invoice))
	if s.rollDropResponse() {
		// Commit, then lose the answer: the client sees EOF or a reset.
		s.log.Info("wepayoutsim: fault: dropping the answer", "id", p.id)
		panic(http.ErrAbortHandler)
	}
	writeBytes(w, http.StatusCreated, answer)
}

// createView is the create answer [doc]: the amount as "R$43.34".
func (s *Server) createView(p *payment) map[string]any {
	return map[string]any{
		"id": p.id, "invoice": p.invoice, "amount": "R$" + wepayout.FormatReais(p.cents), "currency": "BRL",
		"status": map[string]any{"id": p.status, "name": statusName(p.status)}, "created_at": apiTime(p.createdAt),
	}
}

// readView is GET's shape [seed]: the amount in integer cents, our invoice
// as external_id.
func (s *Server) readView(p *payment) map[string]any {
	rcp := map[string]any{"name": p.name, "document": map[string]string{"type": p.docType, "number": p.docNumber}}
	if p.bank != nil {
		rcp["bank_account"] = p.bank
	} else {
		rcp["pix"] = map[string]string{"pix_key": p.pixKey}
	}
	v := map[string]any{
		"id": p.id, "merchant_id": s.cfg.MerchantID, "amount": p.cents, "currency": "BRL", "country": "BR",
		"description": p.description, "recipient": rcp,
		"status":      map[string]any{"id": p.status, "name": statusName(p.status)},
		"external_id": p.invoice, "notification_url": p.notificationURL,
		"created_at": apiTime(p.createdAt), "updated_at": apiTime(p.updatedAt),
	}
	if p.detail != nil {
		v["status_detail"] = p.detail
	}
	return v
}

// apiTime is GET's time form [seed]: "2024-06-13T10:00:00.000000Z".
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	p, ok := s.byID[id]
	var v map[string]any
	if ok && err == nil {
		v = s.readView(p)
	}
	s.mu.Unlock()
	if v == nil {
		writeMessage(w, http.StatusNotFound, "Payment not found.")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, per := 1, 20
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeMessage(w, http.StatusBadRequest, "The page must be at least 1.")
			return
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > wepayout.MaxPerPage {
			writeMessage(w, http.StatusBadRequest, "The per page must be between 1 and 100.")
			return
		}
		per = n
	}
	var start, end string
	for _, d := range []struct {
		name string
		dst  *string
	}{{"created_at_start", &start}, {"created_at_end", &end}} {
		if v := q.Get(d.name); v != "" {
			if _, err := time.Parse("2006-01-02", v); err != nil {
				writeMessage(w, http.StatusBadRequest, "The "+strings.ReplaceAll(d.name, "_", " ")+" does not match the format Y-m-d.")
				return
			}
			*d.dst = v
		}
	}
	statusID := 0
	if v := q.Get("status_id"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeMessage(w, http.StatusBadRequest, "The status id must be an integer.")
			return
		}
		statusID = n
	}
	ext := q.Get("external_id")

	s.mu.Lock()
	var sel []*payment
	if ext != "" {
		sel = s.byInvoice[ext]
	} else {
		sel = s.payments
	}
	var match []*payment
	for _, p := range sel {
		day := p.createdAt.In(wepayout.SaoPaulo).Format("2006-01-02")
		if (statusID != 0 && p.status != statusID) || (start != "" && day < start) || (end != "" && day > end) {
			continue
		}
		match = append(match, p)
	}
	total := len(match)
	last := max(1, int(math.Ceil(float64(total)/float64(per))))
	data := []map[string]any{}
	for i := (page - 1) * per; i < total && i < page*per; i++ {
		data = append(data, s.readView(match[i]))
	}
	s.mu.Unlock()
	link := pageLinks(r.URL, last)
	if len(data) == 0 {
		// A lookup of a payee not yet paid: the listing's most frequent
		// answer, written by hand (appendEmptyPage).
		writeBytes(w, http.StatusOK, appendEmptyPage(make([]byte, 0, 384), page, per, last, total, link))
		return
	}
	writeJSON(w, http.StatusOK, pageView(data, page, per, last, total, link))
}

// pageLinks returns the listing's link to page n of 1..last (nil outside):
// the request's URL with its query's page set to n, the query re-encoded
// (keys sorted), as setting it with url.Values and encoding the query for
// every link would write it (TestPageLinksMatchValuesEncode). The query is
// parsed and encoded once, not once per link: the lookups of payees not
// yet paid, each an empty page with two links, are most of the listings.
func pageLinks(u *url.URL, last int) func(n int) any {
	// Encode sorts the keys: the other keys before "page" make the head,
	// those after it the tail.
	before, after := url.Values{}, url.Values{}
	for k, vs := range u.Query() {
		switch {
		case k < "page":
			before[k] = vs
		case k > "page":
			after[k] = vs
		}
	}
	head, tail := before.Encode(), after.Encode()
	if head != "" {
		head += "&"
	}
	if tail != "" {
		tail = "&" + tail
	}
	base := *u
	base.RawQuery, base.ForceQuery = "", false
	base.Fragment, base.RawFragment = "", ""
	prefix := base.String() + "?" + head + "page="
	if u.Fragment != "" {
		tail += "#" + u.EscapedFragment()
	}
	return func(n int) any {
		if n < 1 || n > last {
			return nil
		}
		return prefix + strconv.Itoa(n) + tail
	}
}

// pageView is a page of the listing [seed].
func pageView(data []map[string]any, page, per, last, total int, link func(int) any) map[string]any {
	return map[string]any{
		"data":  data,
		"meta":  map[string]int{"current_page": page, "last_page": last, "per_page": per, "total": total},
		"links": map[string]any{"first": link(1), "last": link(last), "prev": link(page - 1), "next": link(page + 1)},
	}
}

func (s *Server) handleBalance(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("merchantId") != strconv.FormatInt(s.cfg.MerchantID, 10) {
		writeMessage(w, http.StatusNotFound, "Merchant not found.")
		return
	}
	var bal, reserve int64
	if r.URL.Query().Get("currency") == "BRL" {
		s.mu.Lock()
		bal = s.balance
		for _, p := range s.payments {
			if !finalStatus(p.status) {
				reserve += p.cents
			}
		}
		s.mu.Unlock()
	}
	n := func(c int64) json.Number { return json.Number(wepayout.FormatReais(c)) }
	writeJSON(w, http.StatusOK, map[string]any{"balance": n(bal + reserve), "available_balance": n(bal),
		"reserve_balance": n(reserve), "fee": n(0)})
}

// Tick applies every status step that is due and returns how many.
func (s *Server) Tick() int {
	now := s.clock.Now()
	var events []hookEvent
	n := 0
	s.mu.Lock()
	if len(s.active) == 0 || now.Before(s.due) {
		// Nothing is due: a load run holds its payments for an hour, and
		// scanning them all every tick was 8% of the simulator's CPU.
		s.mu.Unlock()
		return 0
	}
	keep := s.active[:0]
	due := time.Time{}
	for _, p := range s.active {
		for !p.nextAt.IsZero() && !now.Before(p.nextAt) {
			at := p.nextAt
			s.setStatus(p, p.outcome.Path[p.step], nil, at)
			p.step++
			if p.step < len(p.outcome.Path) {
				p.nextAt = at.Add(s.stepDelay(p))
			} else {
				p.nextAt = time.Time{}
				if p.outcome.Detail != nil {
					d := *p.outcome.Detail
					p.detail = &d
				}
			}
			events = append(events, s.event(p))
			n++
		}
		if !p.nextAt.IsZero() {
			keep = append(keep, p)
			if len(keep) == 1 || p.nextAt.Before(due) {
				due = p.nextAt
			}
		}
	}
	clear(s.active[len(keep):])
	s.active, s.due = keep, due
	s.mu.Unlock()
	s.hooks.enqueue(events...)
	return n
}

// setStatus moves p to status at t; s.mu is held. A final failure gives the
// money back.
func (s *Server) setStatus(p *payment, status int, detail *Detail, t time.Time) {
	wasFinal := finalStatus(p.status) && p.status != wepayout.StatusPaid
	p.status, p.detail, p.updatedAt = status, detail, t
	if status == wepayout.StatusPaid && p.endToEnd == "" {
		p.endToEnd = fmt.Sprintf("E00000000%s%011d", t.UTC().Format("200601021504"), p.id)
	}
	nowFailed := finalStatus(status) && status != wepayout.StatusPaid
	switch {
	case nowFailed && !wasFinal:
		s.balance += p.cents
	case !nowFailed && wasFinal:
		s.balance -= p.cents
	}
}

// Advance moves a ManualClock by d and applies the due steps; with another
// clock it only ticks.
func (s *Server) Advance(d time.Duration) int {
	if mc, ok := s.clock.(*ManualClock); ok {
		mc.Advance(d)
	}
	return s.Tick()
}
