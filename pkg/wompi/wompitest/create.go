package wompitest

import (
	"bytes"
	"compress/gzip"
	"container/heap"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

const maxBody = 64 << 20

var (
	legalIDTypes   = set("CC", "NIT", "CE", "PP", "TI", "DNI")
	accountTypes   = set("AHORROS", "CORRIENTE", "DEPOSITO_ELECTRONICO")
	paymentTypes   = set(wompi.PaymentTypePayroll, wompi.PaymentTypeProviders, wompi.PaymentTypeOther)
	forcedStatuses = set("APPROVED", "FAILED")
	intervals      = set(wompi.IntervalBiweek, wompi.IntervalMonth)
	fileTypes      = set(wompi.FileTypeWompi, wompi.FileTypePAB, wompi.FileTypeSAP, wompi.FileTypeDisfon,
		wompi.FileTypeBancoOccidenteFC, wompi.FileTypeDavivienda)
)

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// apiError is a refusal with an HTTP status and a code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	key, ok := s.idemKey(w, r)
	if !ok || s.refusePostUnauthorized(w, key) {
		return
	}
	var req wireCreate
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		s.writeError(w, http.StatusBadRequest, wompi.CodeValidation, "cannot read body")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeValidation(w, []string{"body is not valid JSON: " + jsonErr(err)})
		return
	}
	s.create(w, &req, key, "json", nil)
}

func jsonErr(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// idemKey reads and validates the idempotency-key header. An absent key is
// accepted [ours: Wompi does not say it is mandatory; our client always
// sends one].
func (s *Server) idemKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	vals := r.Header.Values(wompi.HeaderIdempotencyKey)
	if len(vals) == 0 {
		return "", true
	}
	if len(vals) > 1 || !wompi.ValidIdempotencyKey(vals[0]) {
		s.writeValidation(w, []string{"idempotency-key must be 1-64 characters of letters, digits and '-'"})
		return "", false
	}
	return vals[0], true
}

// create validates req, then commits it atomically: idempotency, daily
// limits, balance, ledger. bankResolved, when not nil, holds the banks of
// a file upload (by transaction index).
func (s *Server) create(w http.ResponseWriter, req *wireCreate, key, source string, fileBanks []*bankEntry) {
	now := s.clock.Now()
	b, msgs := s.validate(req, now, fileBanks)
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	b.idemKey, b.source = key, source
	if aerr := s.commit(b, now); aerr != nil {
		s.log.Info("wompisim: batch refused", "reference", b.reference, "code", aerr.code, "transactions", len(b.txs))
		s.writeError(w, aerr.status, aerr.code, aerr.msg)
		return
	}
	s.log.Info("wompisim: batch created", "payoutId", b.id, "reference", b.reference, "accountId", b.accountID,
		"transactions", len(b.txs), "amountInCents", b.amount, "source", source)
	if s.rollDropResponse() {
		// [ours] "commit then lose the answer": the batch exists, the
		// connection is closed without a response; the client sees EOF or
		// a connection reset.
		s.log.Info("wompisim: fault: dropping the answer", "payoutId", b.id)
		panic(http.ErrAbortHandler)
	}
	s.writeData(w, http.StatusCreated, map[string]any{
		"payoutId": b.id, "transactions": len(b.txs), "success": len(b.txs), "failed": 0,
	})
}

// validate checks every field rule and builds the batch (not yet
// committed). It takes no lock: accounts and banks are fixed at New.
func (s *Server) validate(req *wireCreate, now time.Time, fileBanks []*bankEntry) (*batch, []string) {
	var msgs []string
	add := func(format string, args ...any) {
		if len(msgs) < 100 {
			msgs = append(msgs, fmt.Sprintf(format, args...))
		} else if len(msgs) == 100 {
			msgs = append(msgs, "too many errors; the rest are not listed")
		}
	}
	if strings.TrimSpace(req.Reference) == "" {
		add("reference is required")
	}
	if req.AccountID == "" {
		add("accountId is required")
	} else if a, ok := s.accounts[req.AccountID]; !ok {
		add("accountId is not an account of this client")
	} else if a.Status != wompi.AccountActive {
		add("accountId is not ACTIVE")
	}
	if !paymentTypes[req.PaymentType] {
		add("paymentType must be PAYROLL, PROVIDERS or OTHER")
	}
	if req.TransactionStatus != "" && !forcedStatuses[req.TransactionStatus] {
		add("transactionStatus must be APPROVED or FAILED")
	}
	var dispAt time.Time
	if req.DispersionDatetime != nil {
		t, err := time.ParseInLocation(wompi.DispersionLayout, *req.DispersionDatetime, wompi.Bogota)
		switch {
		case err != nil:
			add("dispersionDatetime must have the format YYYY-MM-DDTHH:mm")
		case wompi.BogotaDay(t) <= wompi.BogotaDay(now):
			add("dispersionDatetime must be at least the next day (America/Bogota)")
		default:
			dispAt = t
		}
	}
	if rc := req.Recurring; rc != nil {
		if !intervals[rc.Interval] {
			add("recurring.interval must be biweek or month")
		}
		if rc.Months != 3 && rc.Months != 6 && rc.Months != 12 {
			add("recurring.months must be 3, 6 or 12")
		}
		if req.DispersionDatetime == nil {
			add("recurring requires dispersionDatetime")
		}
	}
	if len(req.Transactions) == 0 {
		add("transactions must not be empty")
	}
	b := &batch{
		reference: req.Reference, accountID: req.AccountID, paymentType: req.PaymentType,
		dispAt: dispAt, recurring: req.Recurring, forced: req.TransactionStatus,
		status: wompi.BatchPending, createdAt: now, updatedAt: now,
	}
	if req.DispersionDatetime != nil {
		b.dispersion = *req.DispersionDatetime
	}
	b.txs = make([]*txn, 0, len(req.Transactions))
	var total int64
	for i := range req.Transactions {
		t := &req.Transactions[i]
		if !legalIDTypes[t.LegalIDType] {
			add("transactions[%d].legalIdType must be one of CC, NIT, CE, PP, TI, DNI", i)
		}
		if !validLegalID(t.LegalID) {
			add("transactions[%d].legalId must be 1-20 letters or digits", i)
		}
		var bank *bankEntry
		if fileBanks != nil {
			bank = fileBanks[i]
			if bank == nil {
				add("transactions[%d].bankCode is not a supported bank", i)
			}
		} else if bank = s.bankByID[t.BankID]; bank == nil {
			add("transactions[%d].bankId is not a bank from /banks", i)
		}
		if !accountTypes[t.AccountType] {
			add("transactions[%d].accountType must be AHORROS, CORRIENTE or DEPOSITO_ELECTRONICO", i)
		}
		if !validAccountNumber(t.AccountNumber) {
			add("transactions[%d].accountNumber must be 6-20 digits and not all zeros", i)
		}
		if n := strings.TrimSpace(t.Name); n == "" || len(n) > 100 {
			add("transactions[%d].name is required (at most 100 characters)", i)
		}
		if !validEmail(t.Email) {
			add("transactions[%d].email is not a valid email address", i)
		}
		if t.Amount <= 0 {
			add("transactions[%d].amount must be a positive integer of cents", i)
		}
		if strings.TrimSpace(t.Reference) == "" {
			add("transactions[%d].reference is required", i)
		}
		if len(msgs) > 0 {
			continue
		}
		total += t.Amount
		b.txs = append(b.txs, &txn{w: *t, bank: bank, status: wompi.TransactionPending, createdAt: now, updatedAt: now})
	}
	if len(msgs) > 0 {
		return nil, msgs
	}
	b.amount = total
	b.day = wompi.BogotaDay(now)
	if !dispAt.IsZero() {
		b.day = wompi.BogotaDay(dispAt) // [ours] a scheduled batch counts on its dispersion day
	}
	start := now
	if dispAt.After(start) {
		start = dispAt
	}
	b.id = s.newID()
	for _, t := range b.txs {
		t.b = b
		t.id = s.newID()
		t.dueAt = start.Add(s.settleDelay(t.w.Reference))
		t.outcome, t.reason = s.outcome(b.forced, t.w.AccountNumber)
	}
	return b, nil
}

func validLegalID(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func validAccountNumber(s string) bool {
	if len(s) < 6 || len(s) > 20 {
		return false
	}
	nonZero := false
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		if s[i] != '0' {
			nonZero = true
		}
	}
	return nonZero
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || len(s) > 254 || strings.ContainsAny(s, " \t\r\n,;") {
		return false
	}
	dom := s[at+1:]
	dot := strings.LastIndexByte(dom, '.')
	return dot > 0 && dot < len(dom)-1
}

// settleDelay is SettleDelay plus a jitter derived from the reference, so a
// run is reproducible.
func (s *Server) settleDelay(ref string) time.Duration {
	d := s.cfg.SettleDelay
	if j := s.cfg.SettleJitter; j > 0 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(ref))
		d += time.Duration(h.Sum64() % uint64(j))
	}
	return d
}

// outcome applies the test rules: the sandbox transactionStatus first, then
// the cancel prefix, then the failure suffix table.
func (s *Server) outcome(forced, accountNumber string) (wompi.TransactionStatus, FailureRule) {
	switch forced {
	case "APPROVED":
		return wompi.TransactionApproved, FailureRule{}
	case "FAILED":
		for _, r := range s.cfg.FailureRules {
			if strings.HasSuffix(accountNumber, r.Suffix) {
				return wompi.TransactionFailed, r
			}
		}
		return wompi.TransactionFailed, *s.cfg.ForcedFailure
	}
	if p := s.cfg.CancelPrefix; p != "-" && strings.HasPrefix(accountNumber, p) {
		return wompi.TransactionCancelled, FailureRule{Message: "Cancelled by the approver"}
	}
	for _, r := range s.cfg.FailureRules {
		if strings.HasSuffix(accountNumber, r.Suffix) {
			return wompi.TransactionFailed, r
		}
	}
	return wompi.TransactionApproved, FailureRule{}
}

// commit applies the batch under the lock, or refuses it.
func (s *Server) commit(b *batch, now time.Time) *apiError {
	s.mu.Lock()
	if b.idemKey != "" {
		if at, ok := s.idem[b.idemKey]; ok {
			if aerr := s.keyReuse(now.Sub(at)); aerr != nil { // 409 EXC_022 (chaosfaults.go)
				s.mu.Unlock()
				return aerr
			}
		}
	}
	acc := s.accounts[b.accountID]
	day := s.dayUsage(b.day)
	switch {
	case day.batches >= s.cfg.DailyBatchCap:
		s.mu.Unlock()
		return &apiError{http.StatusBadRequest, wompi.CodeDailyBatchLimit,
			fmt.Sprintf("daily limit of %d batches reached for %s", s.cfg.DailyBatchCap, b.day)}
	case day.perAccount[b.accountID]+b.amount > acc.DailyLimitInCents:
		s.mu.Unlock()
		return &apiError{http.StatusBadRequest, wompi.CodeDailyLimit, "the account's daily transactional limit would be exceeded on " + b.day}
	case day.amount+b.amount > s.cfg.ClientDailyLimitInCents:
		s.mu.Unlock()
		return &apiError{http.StatusBadRequest, wompi.CodeDailyLimit, "the client's daily transactional limit would be exceeded on " + b.day}
	case acc.BalanceInCents < b.amount:
		s.mu.Unlock()
		return &apiError{http.StatusBadRequest, wompi.CodeInsufficientBalance, "insufficient balance in the origin account"}
	}
	if b.idemKey != "" {
		s.idem[b.idemKey] = now
		s.keyCommitted(b.idemKey) // chaosfaults.go
	}
	acc.BalanceInCents -= b.amount
	acc.updatedAt = now
	day.batches++
	day.txs += int64(len(b.txs))
	day.amount += b.amount
	day.perAccount[b.accountID] += b.amount
	s.payouts = append(s.payouts, b)
	s.payoutByID[b.id] = b
	s.byBatchRef[b.reference] = append(s.byBatchRef[b.reference], b)
	for _, t := range b.txs {
		t.order = s.seq.Add(1)
		s.byTxRef[t.w.Reference] = append(s.byTxRef[t.w.Reference], t)
		heap.Push(&s.due, t)
	}
	ev := s.payoutEvent(b, now)
	s.mu.Unlock()
	s.hooks.enqueue(ev)
	return nil
}

func (s *Server) dayUsage(day string) *dayUsage {
	d := s.days[day]
	if d == nil {
		d = &dayUsage{perAccount: map[string]int64{}}
		s.days[day] = d
	}
	return d
}

// handleCreateFile is POST /payouts/file [doc]. Only the WOMPI type is
// parsed, in our CSV layout (wompi.WompiCSVHeader) [ours]; the other types
// are recognised and refused with 400.
func (s *Server) handleCreateFile(w http.ResponseWriter, r *http.Request) {
	key, ok := s.idemKey(w, r)
	if !ok || s.refusePostUnauthorized(w, key) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		s.writeValidation(w, []string{"body must be multipart/form-data"})
		return
	}
	defer r.MultipartForm.RemoveAll()
	f := r.MultipartForm
	val := func(k string) string {
		if v := f.Value[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var msgs []string
	fileType := val("fileType")
	if !fileTypes[fileType] {
		msgs = append(msgs, "fileType must be WOMPI, PAB, SAP, DISFON, BANCO_OCCIDENTE_FC or DAVIVIENDA")
	}
	files := f.File["file"]
	if len(files) != 1 {
		msgs = append(msgs, "file is required")
	}
	req := wireCreate{Reference: val("reference"), AccountID: val("accountId"), PaymentType: val("paymentType"),
		TransactionStatus: val("transactionStatus")}
	if v := val("dispersionDatetime"); v != "" {
		req.DispersionDatetime = &v
	}
	if iv := val("interval"); iv != "" || val("months") != "" {
		m, _ := strconv.Atoi(val("months"))
		req.Recurring = &wireRecurring{Interval: iv, Months: m, Description: val("description")}
	}
	if len(msgs) > 0 {
		s.writeValidation(w, msgs)
		return
	}
	fh := files[0]
	name, mime := fh.Filename, fh.Header.Get("Content-Type")
	fd, err := fh.Open()
	if err != nil {
		s.writeValidation(w, []string{"file cannot be read"})
		return
	}
	defer fd.Close()
	var content io.Reader = fd
	if strings.HasSuffix(strings.ToLower(name), ".gz") {
		// [doc] a compressed upload: .gz name, MIME application/gzip, and
		// the original name and MIME in fileName and fileMime.
		if mime != "application/gzip" {
			msgs = append(msgs, "a .gz file must have MIME type application/gzip")
		}
		if val("fileName") == "" || strings.HasSuffix(strings.ToLower(val("fileName")), ".gz") {
			msgs = append(msgs, "fileName (the original name) is required for a .gz file")
		}
		if val("fileMime") == "" {
			msgs = append(msgs, "fileMime (the original MIME) is required for a .gz file")
		}
		if len(msgs) > 0 {
			s.writeValidation(w, msgs)
			return
		}
		zr, err := gzip.NewReader(fd)
		if err != nil {
			s.writeValidation(w, []string{"file is not valid gzip"})
			return
		}
		content, name, mime = zr, val("fileName"), val("fileMime")
	}
	if fileType != wompi.FileTypeWompi {
		s.writeValidation(w, []string{"fileType " + fileType + " is not parsed by the simulator; use WOMPI"})
		return
	}
	if ext := strings.ToLower(path.Ext(name)); ext != ".csv" {
		s.writeValidation(w, []string{"a WOMPI file must be a .csv"})
		return
	}
	raw, err := io.ReadAll(io.LimitReader(content, maxBody))
	if err != nil {
		s.writeValidation(w, []string{"file cannot be read: " + jsonErr(err)})
		return
	}
	rows, err := wompi.ParseWompiCSV(bytes.NewReader(raw))
	if err != nil {
		s.writeValidation(w, []string{err.Error()})
		return
	}
	banks := make([]*bankEntry, len(rows))
	req.Transactions = make([]wireTx, len(rows))
	for i, row := range rows {
		banks[i] = s.bankByCode[row.BankCode]
		req.Transactions[i] = wireTx{LegalIDType: row.LegalIDType, LegalID: row.LegalID, AccountType: row.AccountType,
			AccountNumber: row.AccountNumber, Name: row.Name, Email: row.Email, Amount: row.Amount, Reference: row.Reference}
		if banks[i] != nil {
			req.Transactions[i].BankID = banks[i].id
		}
	}
	s.create(w, &req, key, "file", banks)
}
