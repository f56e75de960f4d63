package wompitest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// electronicDeposit are the wallets among the banks [ours].
var electronicDeposit = set("1507", "1551", "1801", "1802", "1803", "1804", "1811", "1812", "1814")

// handleBanks answers BARE (no envelope) [sdk], to keep clients honest.
func (s *Server) handleBanks(w http.ResponseWriter, r *http.Request) {
	type bankView struct {
		ID                  string `json:"id"`
		Name                string `json:"name"`
		Code                string `json:"code"`
		AchCode             string `json:"achCode"`
		SwiftCode           string `json:"swiftCode"`
		AllowedForOrigin    bool   `json:"allowedForOrigin"`
		IsElectronicDeposit bool   `json:"isElectronicDeposit"`
	}
	out := make([]bankView, len(s.banks))
	for i, b := range s.banks {
		out[i] = bankView{ID: b.id, Name: b.name, Code: b.code, AchCode: b.code, AllowedForOrigin: b.code == "1007",
			IsElectronicDeposit: electronicDeposit[b.code]}
	}
	s.writeJSON(w, http.StatusOK, out)
}

type accountView struct {
	ID             string            `json:"id"`
	BalanceInCents int64             `json:"balanceInCents"`
	Number         string            `json:"number"`
	Status         string            `json:"status"`
	AccountType    string            `json:"accountType"`
	Bank           map[string]string `json:"bank"`
	UpdatedAt      *string           `json:"updatedAt"`
}

// bankKey normalises a bank name for the bankCodes filter, which the docs
// illustrate with names such as BANCO_BOGOTA [doc].
func bankKey(name string) string {
	k := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 32
		}
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	return strings.ReplaceAll(k, "_DE_", "_")
}

// handleAccounts is GET /accounts, wrapped, not paginated [ours].
func (s *Server) handleAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && status != wompi.AccountActive && status != wompi.AccountInactive && status != wompi.AccountInReview {
		s.writeValidation(w, []string{"status must be IN_REVIEW, ACTIVE or INACTIVE"})
		return
	}
	var codes map[string]bool
	if v := q.Get("bankCodes"); v != "" {
		codes = map[string]bool{}
		for _, c := range strings.Split(v, ",") {
			codes[strings.TrimSpace(c)] = true
			codes[bankKey(strings.TrimSpace(c))] = true
		}
	}
	out := []accountView{}
	s.mu.Lock()
	for _, id := range s.accountList {
		a := s.accounts[id]
		b := s.bankByCode[a.BankCode]
		if status != "" && a.Status != status {
			continue
		}
		if codes != nil && !codes[a.BankCode] && !codes[bankKey(b.name)] {
			continue
		}
		out = append(out, accountView{ID: a.ID, BalanceInCents: a.BalanceInCents, Number: a.Number, Status: a.Status,
			AccountType: a.AccountType, Bank: map[string]string{"code": b.code, "name": b.name}, UpdatedAt: fmtTime(a.updatedAt)})
	}
	s.mu.Unlock()
	s.writeData(w, http.StatusOK, out)
}

// handleLimits answers BARE [sdk] for today, or for ?date=YYYY-MM-DD
// [ours]; numberOfBatchesConsumed, accounts and date are [ours]. With
// PublishedOnly it ignores date and answers only the [sdk] fields of today.
func (s *Server) handleLimits(w http.ResponseWriter, r *http.Request) {
	day := wompi.BogotaDay(s.clock.Now())
	if s.cfg.PublishedOnly {
		v := s.limitsFor(day)
		var pub publishedLimitsView
		pub.NumberOfTransactionsConsumed, pub.Limits = v.NumberOfTransactionsConsumed, v.Limits
		s.writeJSON(w, http.StatusOK, pub)
		return
	}
	if d := r.URL.Query().Get("date"); d != "" {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			s.writeValidation(w, []string{"date must have the format YYYY-MM-DD"})
			return
		}
		day = d
	}
	s.writeJSON(w, http.StatusOK, s.limitsFor(day))
}

type accountLimitsView struct {
	AccountID      string `json:"accountId"`
	DailyLimit     int64  `json:"dailyLimit"`
	DailyConsumed  int64  `json:"dailyConsumed"`
	DailyAvailable int64  `json:"dailyAvailable"`
}

// dailyLimitsView is the [sdk] limits object, client-wide, in cents.
type dailyLimitsView struct {
	DailyLimit     int64 `json:"dailyLimit"`
	DailyAvailable int64 `json:"dailyAvailable"`
	DailyConsumed  int64 `json:"dailyConsumed"`
}

// publishedLimitsView is GET /limits as the [sdk] shows it: nothing else.
type publishedLimitsView struct {
	NumberOfTransactionsConsumed int64           `json:"numberOfTransactionsConsumed"`
	Limits                       dailyLimitsView `json:"limits"`
}

// limitsView adds the [ours] extras: the batch count, per-account figures
// and the day.
type limitsView struct {
	NumberOfTransactionsConsumed int64               `json:"numberOfTransactionsConsumed"`
	Limits                       dailyLimitsView     `json:"limits"`
	NumberOfBatchesConsumed      int                 `json:"numberOfBatchesConsumed"`
	Accounts                     []accountLimitsView `json:"accounts"`
	Date                         string              `json:"date"`
}

func (s *Server) limitsFor(day string) limitsView {
	var v limitsView
	v.Date = day
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.days[day]
	if u == nil {
		u = &dayUsage{perAccount: map[string]int64{}}
	}
	v.NumberOfTransactionsConsumed = u.txs
	v.NumberOfBatchesConsumed = u.batches
	v.Limits.DailyLimit = s.cfg.ClientDailyLimitInCents
	v.Limits.DailyConsumed = u.amount
	v.Limits.DailyAvailable = max(0, s.cfg.ClientDailyLimitInCents-u.amount)
	for _, id := range s.accountList {
		a := s.accounts[id]
		c := u.perAccount[id]
		v.Accounts = append(v.Accounts, accountLimitsView{AccountID: id, DailyLimit: a.DailyLimitInCents,
			DailyConsumed: c, DailyAvailable: max(0, a.DailyLimitInCents-c)})
	}
	return v
}

type pageView struct {
	Page    int `json:"page"`
	Limit   int `json:"limit"`
	Total   int `json:"total"`
	Pages   int `json:"pages"`
	Records any `json:"records"`
}

// pageArgs reads limit (default 20, at most MaxPageSize) and page
// (1-based) [ours].
func (s *Server) pageArgs(q url.Values) (limit, page int, msgs []string) {
	limit, page = 20, 1
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.cfg.MaxPageSize {
			msgs = append(msgs, "limit must be an integer from 1 to "+strconv.Itoa(s.cfg.MaxPageSize))
		}
		limit = n
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			msgs = append(msgs, "page must be a positive integer")
		}
		page = n
	}
	return
}

// paginate slices n items; it returns the [from, to) window and the page.
func paginate(n, limit, page int) (from, to int, p pageView) {
	p = pageView{Page: page, Limit: limit, Total: n, Pages: (n + limit - 1) / limit}
	from = min((page-1)*limit, n)
	to = min(from+limit, n)
	return
}

// documentedBatchStatuses are the six batch statuses of the docs [doc]:
// the only values StrictStatusFilter lets through.
var documentedBatchStatuses = set("PENDING_APPROVAL", "PENDING", "NOT_APPROVED", "REJECTED", "PARTIAL_PAYMENT", "TOTAL_PAYMENT")

// handleListPayouts is GET /payouts [doc], oldest first [ours] so that
// pages stay stable while batches are added.
func (s *Server) handleListPayouts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, msgs := s.pageArgs(q)
	var statuses map[string]bool
	if v := q.Get("status"); v != "" {
		statuses = map[string]bool{}
		for _, st := range strings.Split(v, ",") {
			st = strings.TrimSpace(st)
			// [doc] a comma list of batch statuses. What Wompi does with
			// another value is not published: by default it matches no
			// batch (the [sdk] AFE_ON_HOLD and AFE_REJECTED match theirs);
			// StrictStatusFilter answers 400 [ours].
			if s.cfg.StrictStatusFilter && !documentedBatchStatuses[st] {
				msgs = append(msgs, "status must be a comma list of PENDING_APPROVAL, PENDING, NOT_APPROVED, REJECTED, PARTIAL_PAYMENT, TOTAL_PAYMENT")
				break
			}
			statuses[st] = true
		}
	}
	from, to := q.Get("fromDate"), q.Get("toDate")
	for k, v := range map[string]string{"fromDate": from, "toDate": to} {
		if v != "" {
			if _, err := time.Parse(time.DateOnly, v); err != nil {
				msgs = append(msgs, k+" must have the format YYYY-MM-DD")
			}
		}
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	ref, id := q.Get("reference"), q.Get("id")
	s.mu.Lock()
	src := s.payouts
	if ref != "" {
		src = s.byBatchRef[ref]
	}
	var match []*batch
	for _, b := range src {
		if id != "" && b.id != id {
			continue
		}
		if statuses != nil && !statuses[string(b.status)] {
			continue
		}
		if from != "" || to != "" {
			d := wompi.BogotaDay(b.createdAt)
			if (from != "" && d < from) || (to != "" && d > to) {
				continue
			}
		}
		match = append(match, b)
	}
	lo, hi, pv := paginate(len(match), limit, page)
	recs := make([]payoutView, 0, hi-lo)
	for _, b := range match[lo:hi] {
		recs = append(recs, s.viewPayout(b))
	}
	s.mu.Unlock()
	pv.Records = recs
	s.writeData(w, http.StatusOK, pv)
}

func (s *Server) handleGetPayout(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b := s.payoutByID[r.PathValue("id")]
	var v payoutView
	if b != nil {
		v = s.viewPayout(b)
	}
	s.mu.Unlock()
	if b == nil {
		s.writeError(w, http.StatusNotFound, wompi.CodeNotFound, "payout not found")
		return
	}
	s.writeData(w, http.StatusOK, v)
}

var txFilterStatuses = set("PROCESSING", "PENDING", "APPROVED", "FAILED", "REJECTED", "CANCELLED")

// handlePayoutTransactions is GET /payouts/{id}/transactions [doc].
// payeeName matches a case-insensitive substring [ours].
func (s *Server) handlePayoutTransactions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, msgs := s.pageArgs(q)
	st := q.Get("status")
	if st != "" && !txFilterStatuses[st] {
		msgs = append(msgs, "status must be PROCESSING, PENDING, APPROVED, FAILED or REJECTED")
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	ref, acct, name := q.Get("reference"), q.Get("accountNumber"), strings.ToLower(q.Get("payeeName"))
	s.mu.Lock()
	b := s.payoutByID[r.PathValue("id")]
	if b == nil {
		s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, wompi.CodeNotFound, "payout not found")
		return
	}
	if st == "" && ref == "" && acct == "" && name == "" {
		s.unlockAndSendPage(w, b.txs, limit, page) // unfiltered: the batch's own list
		return
	}
	var match []*txn
	for _, t := range b.txs {
		if (st != "" && string(t.status) != st) || (ref != "" && t.w.Reference != ref) ||
			(acct != "" && t.w.AccountNumber != acct) || (name != "" && !strings.Contains(strings.ToLower(t.w.Name), name)) {
			continue
		}
		match = append(match, t)
	}
	s.unlockAndSendPage(w, match, limit, page)
}

func (s *Server) handleGetTransaction(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b := s.payoutByID[r.PathValue("id")]
	var v *txView
	if b != nil {
		txID := r.PathValue("txId")
		for _, t := range b.txs {
			if t.id == txID {
				tv := s.viewTx(t)
				v = &tv
				break
			}
		}
	}
	s.mu.Unlock()
	if v == nil {
		s.writeError(w, http.StatusNotFound, wompi.CodeNotFound, "transaction not found")
		return
	}
	s.writeData(w, http.StatusOK, v)
}

var refFilterStatuses = set("PENDING", "APPROVED", "CANCELLED", "FAILED")

// handleTransactionsByRef is GET /transactions/{reference}: the
// transactions of every batch with that BATCH reference [sdk]; an unknown
// reference gives an empty page [ours].
func (s *Server) handleTransactionsByRef(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, page, msgs := s.pageArgs(q)
	st := q.Get("status")
	if st != "" && !refFilterStatuses[st] {
		msgs = append(msgs, "status must be PENDING, APPROVED, CANCELLED or FAILED")
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	s.mu.Lock()
	var match []*txn
	for _, b := range s.byBatchRef[r.PathValue("reference")] {
		for _, t := range b.txs {
			if st == "" || string(t.status) == st {
				match = append(match, t)
			}
		}
	}
	s.unlockAndSendPage(w, match, limit, page)
}

// handleHealth is GET /health [doc]. With the Unhealthy fault it answers
// 503 whose envelope still carries the payload [sdk].
// With PartialOutage a secondary service (notifications) is down: 200
// PARTIAL_OUTAGE [doc: the status and the critical/secondary split].
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	f := s.Faults()
	payments := !f.Unhealthy
	h := map[string]any{"status": wompi.HealthHealthy, "services": []map[string]any{
		{"name": "users", "healthy": true}, {"name": "payments", "healthy": payments},
		{"name": "notifications", "healthy": !f.PartialOutage}, {"name": "afe-rules-engine", "healthy": true},
	}}
	if f.PartialOutage {
		h["status"] = wompi.HealthPartialOutage
	}
	if !payments {
		h["status"] = wompi.HealthUnhealthy
		env := envelope{Status: http.StatusServiceUnavailable, Code: wompi.CodeServiceUnavailable,
			Message: "payments service is down (simulated)", Data: h}
		env.Meta.TraceID = s.traceID()
		s.writeJSON(w, http.StatusServiceUnavailable, env)
		return
	}
	s.writeData(w, http.StatusOK, h)
}

// handleRecharge is the SANDBOX top-up [doc]; it answers BARE [sdk] with
// {accountId, amountInCents, balanceInCents} [ours].
func (s *Server) handleRecharge(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AccountID     string `json:"accountId"`
		AmountInCents int64  `json:"amountInCents"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeValidation(w, []string{"body is not valid JSON"})
		return
	}
	var msgs []string
	if _, ok := s.accounts[req.AccountID]; !ok {
		msgs = append(msgs, "accountId is not an account of this client")
	}
	if req.AmountInCents < MinRechargeInCents || req.AmountInCents > MaxRechargeInCents {
		msgs = append(msgs, "amountInCents must be from 100000 ($1,000.00) to 5000000000 ($50,000,000.00)")
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	s.mu.Lock()
	a := s.accounts[req.AccountID]
	a.BalanceInCents += req.AmountInCents
	a.updatedAt = s.clock.Now()
	bal := a.BalanceInCents
	s.mu.Unlock()
	out := map[string]any{"accountId": req.AccountID, "amountInCents": req.AmountInCents, "balanceInCents": bal}
	if s.cfg.PublishedOnly {
		delete(out, "balanceInCents")
	}
	s.writeJSON(w, http.StatusOK, out)
}
