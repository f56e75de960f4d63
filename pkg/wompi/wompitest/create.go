package wompitest

import (
	"bytes"
	"compress/gzip"
	"container/heap"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"mime"
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
	// [doc] POST /payouts takes Content-Type: application/json; the 415 is
	// [ours].
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); !s.cfg.LenientContentType && (err != nil || mt != "application/json") {
		s.writeError(w, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	key, ok := s.idemKey(w, r)
	if !ok || s.refusePostUnauthorized(w, key) {
		return
	}
	var req wireCreate
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, http.StatusBadRequest, wompi.CodeValidation, "cannot read body")
		return
	}
	if fast, ok := readCreateBody(body); ok {
		req = fast
	} else if err := json.Unmarshal(body, &req); err != nil {
		s.writeValidation(w, []string{"body is not valid JSON: " + jsonErr(err)})
		return
	}
	s.create(w, &req, key, "json", nil)
}

// readBody reads the first maxBody bytes of r's body (as
// io.ReadAll(io.LimitReader(r.Body, maxBody)) does) into one buffer, sized
// by the Content-Length the client announced, if any.
func readBody(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= maxBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxBody))
	return buf.Bytes(), err
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
		case err != nil || !validDispersion(*req.DispersionDatetime):
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
	// The transactions live in one array (the ledger keeps them for the
	// server's life): one allocation per batch, not one per transaction.
	slab := make([]txn, len(req.Transactions))
	b.txs = make([]*txn, 0, len(req.Transactions))
	var total int64
	refs := make(map[string]bool, len(req.Transactions))
	for i := range req.Transactions {
		t := &req.Transactions[i]
		for _, m := range ValidateTransaction(wompi.TransactionRequest{LegalIDType: t.LegalIDType, LegalID: t.LegalID,
			AccountType: t.AccountType, AccountNumber: t.AccountNumber, Name: t.Name, Email: t.Email, Amount: t.Amount,
			Reference: t.Reference, PersonType: t.PersonType}) {
			add("transactions[%d].%s", i, m)
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
		// [doc] the transaction reference is unique.
		if refs[t.Reference] {
			add("transactions[%d].reference is repeated in the batch", i)
		}
		refs[t.Reference] = true
		if len(msgs) > 0 {
			continue
		}
		total += t.Amount
		x := &slab[len(b.txs)]
		*x = txn{w: *t, bank: bank, status: wompi.TransactionPending, createdAt: now, updatedAt: now}
		b.txs = append(b.txs, x)
	}
	if len(msgs) > 0 {
		return nil, msgs
	}
	b.amount = total
	// A batch takes one of the client's daily batch slots on the day it is
	// SENT [doc: "3,800 daily batches that can be sent per client"], even
	// when it is scheduled for a later day. Its amount counts on the day
	// it is dispersed [ours: the docs do not say].
	b.slotDay = wompi.BogotaDay(now)
	b.day = b.slotDay
	if !dispAt.IsZero() {
		b.day = wompi.BogotaDay(dispAt)
	}
	start := now
	if dispAt.After(start) {
		start = dispAt
	}
	b.id = s.newID()
	b.endStatus = s.batchOutcome(b.reference)
	acctBank := s.accounts[b.accountID].BankCode
	ids := s.newIDs(len(b.txs))
	for i, t := range b.txs {
		t.b = b
		t.id = ids[i*idLen : (i+1)*idLen]
		t.dueAt = start.Add(s.settleDelay(t.w.Reference, t.bank.code == acctBank))
		t.outcome, t.reason = s.outcome(b.forced, &t.w)
		switch b.endStatus {
		case "":
		case wompi.BatchNotApproved:
			// [doc] the approver rejected it: CANCELLED, to be sent again.
			t.outcome, t.reason = wompi.TransactionCancelled, FailureRule{Message: "Batch not approved by the approver"}
			t.dueAt = start.Add(s.settleDelay(b.reference, true))
		default:
			// [ours] the transactions of a rejected batch fail with it.
			t.outcome, t.reason = wompi.TransactionFailed, FailureRule{Message: "Batch " + string(b.endStatus)}
			t.dueAt = start.Add(s.settleDelay(b.reference, true))
		}
	}
	return b, nil
}

// validDispersion: exactly YYYY-MM-DDTHH:mm [doc] (time.Parse alone also
// takes a one-digit hour).
func validDispersion(v string) bool {
	if len(v) != 16 {
		return false
	}
	for i := 0; i < 16; i++ {
		c := v[i]
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != 'T' {
				return false
			}
		case 13:
			if c != ':' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// Batch outcome suffixes of the reference (Config.BatchOutcomes) [ours].
const (
	SuffixRejected    = "-rejected"
	SuffixNotApproved = "-not-approved"
	SuffixAFEHold     = "-afe-hold"
	SuffixAFERejected = "-afe-rejected"
)

// batchOutcome is the final batch status a reference asks for, "" for
// the normal flow.
func (s *Server) batchOutcome(ref string) wompi.BatchStatus {
	if !s.cfg.BatchOutcomes {
		return ""
	}
	switch {
	case strings.HasSuffix(ref, SuffixAFERejected): // before SuffixRejected, which it ends with
		return wompi.BatchAFERejected
	case strings.HasSuffix(ref, SuffixAFEHold):
		return wompi.BatchAFEOnHold
	case strings.HasSuffix(ref, SuffixRejected):
		return wompi.BatchRejected
	case strings.HasSuffix(ref, SuffixNotApproved):
		return wompi.BatchNotApproved
	}
	return ""
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
// run is reproducible. With BankSettlement it depends on the bank [doc]:
// within SameBankDelay when the payee's bank is the origin account's
// (uniform in [SameBankDelay/2, SameBankDelay)), else through ACH within
// ACHDelay (uniform in [ACHDelay/4, ACHDelay)), both times SettleScale.
func (s *Server) settleDelay(ref string, sameBank bool) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(ref))
	r := h.Sum64()
	if s.cfg.BankSettlement {
		hi, lo := s.cfg.ACHDelay, s.cfg.ACHDelay/4
		if sameBank {
			hi, lo = s.cfg.SameBankDelay, s.cfg.SameBankDelay/2
		}
		hi = time.Duration(float64(hi) * s.cfg.SettleScale)
		lo = time.Duration(float64(lo) * s.cfg.SettleScale)
		if hi <= lo {
			return hi
		}
		return lo + time.Duration(r%uint64(hi-lo))
	}
	d := s.cfg.SettleDelay
	if j := s.cfg.SettleJitter; j > 0 {
		d += time.Duration(r % uint64(j))
	}
	return d
}

// outcome applies the test rules: the sandbox transactionStatus first [doc],
// then the cancel prefix, then the data rules of the documented rejection
// codes (RejectionByData), then the code named by the payee's name
// (CodeInName), then the account number suffix table [ours].
func (s *Server) outcome(forced string, t *wireTx) (wompi.TransactionStatus, FailureRule) {
	accountNumber := t.AccountNumber
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
	if r, ok := RejectionByData(t.LegalIDType, t.LegalID); ok {
		return wompi.TransactionFailed, r
	}
	if r, ok := CodeInName(t.Name); ok {
		return wompi.TransactionFailed, r
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
	day, slots := s.dayUsage(b.day), s.dayUsage(b.slotDay)
	switch {
	case slots.batches >= s.cfg.DailyBatchCap:
		s.mu.Unlock()
		return &apiError{http.StatusBadRequest, wompi.CodeDailyBatchLimit,
			fmt.Sprintf("daily limit of %d batches reached for %s", s.cfg.DailyBatchCap, b.slotDay)}
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
	slots.batches++
	day.txs += int64(len(b.txs))
	day.amount += b.amount
	day.perAccount[b.accountID] += b.amount
	s.payouts = append(s.payouts, b)
	s.payoutByID[b.id] = b
	s.byBatchRef[b.reference] = append(s.byBatchRef[b.reference], b)
	if b.endStatus == wompi.BatchAFEOnHold {
		// [sdk] status; [ours] the hold is never lifted: the transactions
		// stay PENDING and the money stays taken.
		b.status = wompi.BatchAFEOnHold
	}
	for _, t := range b.txs {
		t.order = s.seq.Add(1)
		s.addByRef(t)
		if b.status != wompi.BatchAFEOnHold {
			heap.Push(&s.due, t)
		}
	}
	ev := s.payoutEvent(b, now)
	s.mu.Unlock()
	s.hooks.enqueue(ev)
	return nil
}

// addByRef adds t to byTxRef, after every transaction accepted before with
// its reference. s.mu held.
func (s *Server) addByRef(t *txn) {
	first, ok := s.byTxRef[t.w.Reference]
	if !ok {
		s.byTxRef[t.w.Reference] = t
		return
	}
	for first.sameRef != nil {
		first = first.sameRef
	}
	first.sameRef = t
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
