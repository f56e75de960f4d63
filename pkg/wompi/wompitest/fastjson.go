package wompitest

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/plainjson"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// The two hot calls of a Wompi load run, done without encoding/json's
// reflection: reading a POST /payouts body (json.Unmarshal of a
// 2,000-transaction body was 36% of the simulator's CPU in a 500,000-request
// run) and writing a batch's transactions page (json.Marshal, 13%).

// readCreateBody reads a POST /payouts body written plainly (plainjson):
// each of the top level's known keys at most once (encoding/json would
// merge a second recurring or transactions into the first, or null a
// dispersionDatetime), each known key spelled exactly, strings without escapes,
// integers for amounts and months, null only where encoding/json leaves a
// pointer or slice nil, unknown keys skipped with their syntax checked,
// nothing after the object. It declines (ok false) anything else, which
// json.Unmarshal then reads as before; when it accepts, json.Unmarshal gives
// the same wireCreate (FuzzCreateBodyMatchesEncodingJSON).
//
// Every string it returns is a slice of one copy of raw: one allocation per
// body instead of one per field.
func readCreateBody(raw []byte) (req wireCreate, ok bool) {
	text := string(raw)
	p := plainjson.Scanner{B: raw}
	str := func() (string, bool) {
		b, ok := p.Raw()
		if !ok {
			return "", false
		}
		end := p.I - 1 // the closing quote
		return text[end-len(b) : end], true
	}
	p.Space()
	if !p.Byte('{') {
		return req, false
	}
	var seen uint32
	ok = p.Object(func(key []byte) bool {
		k := createKey(key)
		if k < 0 {
			return !plainjson.Folds(key, createKeys...) && p.Skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		var ok bool
		switch k {
		case 0:
			req.Reference, ok = str()
		case 1:
			req.AccountID, ok = str()
		case 2:
			req.PaymentType, ok = str()
		case 3:
			if p.Null() {
				return true
			}
			var s string
			s, ok = str()
			req.DispersionDatetime = &s
		case 4:
			if p.Null() {
				return true
			}
			req.Recurring = &wireRecurring{}
			ok = p.Byte('{') && readRecurring(&p, str, req.Recurring)
		case 5:
			req.TransactionStatus, ok = str()
		case 6:
			if p.Null() {
				return true
			}
			ok = p.Byte('[') && readTransactions(&p, str, &req.Transactions)
		}
		return ok
	})
	return req, ok && p.End()
}

// createKeys are wireCreate's keys, in createKey's order.
var createKeys = []string{"reference", "accountId", "paymentType", "dispersionDatetime", "recurring",
	"transactionStatus", "transactions"}

func createKey(key []byte) int {
	switch string(key) {
	case "reference":
		return 0
	case "accountId":
		return 1
	case "paymentType":
		return 2
	case "dispersionDatetime":
		return 3
	case "recurring":
		return 4
	case "transactionStatus":
		return 5
	case "transactions":
		return 6
	}
	return -1
}

// readRecurring reads recurring's members, its '{' already read. A key
// repeated inside it, as inside a transaction, is read again: the last value
// wins, as in encoding/json, for these scalar fields.
func readRecurring(p *plainjson.Scanner, str func() (string, bool), r *wireRecurring) bool {
	return p.Object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "interval":
			r.Interval, ok = str()
		case "months":
			r.Months, ok = p.Int()
		case "description":
			r.Description, ok = str()
		default:
			ok = !plainjson.Folds(key, "interval", "months", "description") && p.Skip()
		}
		return ok
	})
}

// txKeys are wireTx's keys.
var txKeys = []string{"legalIdType", "legalId", "bankId", "accountType", "accountNumber", "name", "email",
	"reference", "personType", "phone", "description", "amount"}

// txField reports whether key is one of txKeys and, for a string field,
// where it goes (nil: the amount).
func txField(t *wireTx, key []byte) (*string, bool) {
	switch string(key) {
	case "legalIdType":
		return &t.LegalIDType, true
	case "legalId":
		return &t.LegalID, true
	case "bankId":
		return &t.BankID, true
	case "accountType":
		return &t.AccountType, true
	case "accountNumber":
		return &t.AccountNumber, true
	case "name":
		return &t.Name, true
	case "email":
		return &t.Email, true
	case "reference":
		return &t.Reference, true
	case "personType":
		return &t.PersonType, true
	case "phone":
		return &t.Phone, true
	case "description":
		return &t.Description, true
	case "amount":
		return nil, true
	}
	return nil, false
}

// readTransactions reads the transactions array, its '[' already read:
// each element an object (a null element is declined).
func readTransactions(p *plainjson.Scanner, str func() (string, bool), txs *[]wireTx) bool {
	// A transaction as clients write it takes about 280 bytes: this
	// capacity holds the array without growing it, or grows it once for
	// a body of shorter ones.
	out := make([]wireTx, 0, max(64, (len(p.B)-p.I)/160))
	ok := p.Array(func() bool {
		if !p.Byte('{') {
			return false
		}
		out = append(out, wireTx{})
		t := &out[len(out)-1]
		return p.Object(func(key []byte) bool {
			dst, known := txField(t, key)
			if !known {
				return !plainjson.Folds(key, txKeys...) && p.Skip()
			}
			if dst != nil {
				s, ok := str()
				*dst = s
				return ok
			}
			n, ok := p.Int()
			t.Amount = int64(n)
			return ok
		})
	})
	*txs = out
	return ok
}

// pagePool holds the buffers transactions pages are written in (a
// 2,000-transaction page is about 1 MB).
var pagePool = sync.Pool{New: func() any { return new([]byte) }}

// unlockAndSendPage answers a transactions page of match: it is written
// with s.mu held (the transactions as they are now), then s.mu is released
// before the answer goes out.
func (s *Server) unlockAndSendPage(w http.ResponseWriter, match []*txn, limit, page int) {
	bp := pagePool.Get().(*[]byte)
	b := s.appendTxPage(*bp, s.traceID(), match, limit, page)
	s.mu.Unlock()
	writeBytes(w, http.StatusOK, b)
	if cap(b) <= 8<<20 {
		*bp = b[:0]
		pagePool.Put(bp)
	}
}

// appendTxPage appends the bytes json.Marshal gives for writeData's
// envelope around s.txPage(match, limit, page) (TestTxPageBytes). s.mu
// held: the transactions are read as they are now.
func (s *Server) appendTxPage(dst []byte, traceID string, match []*txn, limit, page int) []byte {
	lo, hi, pv := paginate(len(match), limit, page)
	dst = append(dst, `{"status":200,"message":"OK","meta":{"trace_id":`...)
	dst = plainjson.AppendString(dst, traceID)
	dst = append(dst, `},"data":{"page":`...)
	dst = strconv.AppendInt(dst, int64(pv.Page), 10)
	dst = append(dst, `,"limit":`...)
	dst = strconv.AppendInt(dst, int64(pv.Limit), 10)
	dst = append(dst, `,"total":`...)
	dst = strconv.AppendInt(dst, int64(pv.Total), 10)
	dst = append(dst, `,"pages":`...)
	dst = strconv.AppendInt(dst, int64(pv.Pages), 10)
	dst = append(dst, `,"records":[`...)
	var times txTimes
	for i, t := range match[lo:hi] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = s.appendTx(dst, t, &times)
	}
	return append(dst, "]}}"...)
}

// appendTx appends json.Marshal(s.viewTx(t))'s bytes (FuzzTxViewMatchesEncodingJSON).
// times holds the last times written, for the next transaction of the page.
func (s *Server) appendTx(dst []byte, t *txn, times *txTimes) []byte {
	dst = append(dst, `{"id":`...)
	dst = plainjson.AppendString(dst, t.id)
	if !s.cfg.PublishedOnly && t.b.id != "" {
		dst = append(dst, `,"payoutId":`...)
		dst = plainjson.AppendString(dst, t.b.id)
	}
	dst = append(dst, `,"status":`...)
	dst = plainjson.AppendString(dst, string(t.status))
	dst = append(dst, `,"amountInCents":`...)
	dst = strconv.AppendInt(dst, t.w.Amount, 10)
	dst = append(dst, `,"reference":`...)
	dst = plainjson.AppendString(dst, t.w.Reference)
	dst = append(dst, `,"payeeInfo":{"bank":`...)
	dst = plainjson.AppendString(dst, t.bank.name)
	dst = append(dst, `,"bankCode":`...)
	dst = plainjson.AppendString(dst, t.bank.code)
	dst = append(dst, `,"name":`...)
	dst = plainjson.AppendString(dst, t.w.Name)
	dst = append(dst, `,"email":`...)
	dst = plainjson.AppendString(dst, t.w.Email)
	dst = append(dst, `,"legalId":`...)
	dst = plainjson.AppendString(dst, t.w.LegalID)
	dst = append(dst, `,"legalIdType":`...)
	dst = plainjson.AppendString(dst, t.w.LegalIDType)
	dst = append(dst, `,"accountType":`...)
	dst = plainjson.AppendString(dst, t.w.AccountType)
	dst = append(dst, `,"accountNumber":`...)
	dst = plainjson.AppendString(dst, t.w.AccountNumber)
	dst = append(dst, `},"failureReason":`...)
	if t.status == wompi.TransactionFailed || t.status == wompi.TransactionCancelled {
		r := t.reason.Message
		if t.reason.Code != "" {
			r = t.reason.Code + ": " + t.reason.Message
		}
		dst = plainjson.AppendString(dst, r)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"appliedAt":`...)
	dst = times.applied.append(dst, t.appliedAt)
	dst = append(dst, `,"createdAt":`...)
	dst = times.created.append(dst, t.createdAt)
	return append(dst, '}')
}

// txTimes remembers the times a page wrote last. A page's transactions
// mostly share them: a batch's are created at one instant, and its pending
// ones have no appliedAt.
type txTimes struct{ applied, created timeMemo }

// timeMemo is one time as appendTime writes it, kept for the next call.
type timeMemo struct {
	t   time.Time
	b   []byte // appendTime's bytes for t; nil before the first call
	buf [32]byte
}

// append appends appendTime(t), formatting it only when t is not the
// instant of the last call (the layout is in UTC, so an equal instant in
// another zone writes the same bytes).
func (m *timeMemo) append(dst []byte, t time.Time) []byte {
	if m.b == nil || !t.Equal(m.t) {
		m.t, m.b = t, appendTime(m.buf[:0], t)
	}
	return append(dst, m.b...)
}

// appendTime appends fmtTime(t) as json.Marshal writes it: null for the
// zero time, else the quoted simTimeLayout (digits and ASCII punctuation
// that needs no escape).
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, simTimeLayout)
	return append(dst, '"')
}
