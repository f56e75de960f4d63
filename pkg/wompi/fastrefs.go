package wompi

import "strings"

// decodeRefPage is getPage's fast path for pages of TransactionRef in the
// usual shape, an envelope whose data is a page: it reads the page in one
// pass without reflection. ok is false for anything it does not handle
// exactly as encoding/json would (escaped or non-ASCII strings, nulls,
// repeated or differently cased keys, numbers that are not plain integers,
// any syntax error); the caller then takes the general path. FuzzRefPage
// holds it to encoding/json.
func decodeRefPage(b []byte) (Page[TransactionRef], bool) {
	return decodeFastPage(b, (*refScanner).ref)
}

// decodeItemPage is decodeRefPage for pages of transactionItem, the
// transaction as Rail.Items reads it (the payee's data skipped). The
// failure reason and the times go through their own UnmarshalJSON, as
// encoding/json would call it. FuzzItemPage holds it to encoding/json.
func decodeItemPage(b []byte) (Page[transactionItem], bool) {
	return decodeFastPage(b, (*refScanner).item)
}

// decodeFastPage reads an envelope whose data is a page, each record with
// rec.
func decodeFastPage[T any](b []byte, rec func(*refScanner, *T) bool) (p Page[T], ok bool) {
	s := refScanner{b: b}
	s.ws()
	sawData := false
	ok = s.object(func(key []byte) bool {
		switch {
		case string(key) == "data":
			if sawData {
				return false
			}
			sawData = true
			return scanPage(&s, &p, rec)
		case foldsTo(key, "data"):
			return false
		}
		return s.skip(0)
	})
	s.ws()
	return p, ok && sawData && s.i == len(s.b)
}

type refScanner struct {
	b []byte
	i int
}

func (s *refScanner) ws() {
	for s.i < len(s.b) && s.b[s.i] <= ' ' { // the usual byte, not a space, costs one comparison
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *refScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// raw reads a string whose bytes are printable ASCII without escapes,
// and returns the bytes between the quotes.
func (s *refScanner) raw() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	b, start := s.b, s.i
	for i := start; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			s.i = i
			return nil, false
		}
	}
	s.i = len(b)
	return nil, false
}

// foldsTo reports whether key equals one of names ignoring ASCII case but
// not exactly (keys are ASCII here: raw refuses anything else, so a name of
// another length never matches).
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if len(key) == len(n) && string(key) != n && strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}

// scanPage reads the page object into p, each record with rec.
func scanPage[T any](s *refScanner, p *Page[T], rec func(*refScanner, *T) bool) bool {
	var seen [5]bool
	return s.object(func(key []byte) bool {
		k := string(key)
		switch k {
		case "page", "limit", "total", "pages", "records":
		default:
			return !foldsTo(key, "page", "limit", "total", "pages", "records") && s.skip(0)
		}
		f := pageFieldIndex(k)
		if seen[f] {
			return false
		}
		seen[f] = true
		var ok bool
		switch k {
		case "page":
			p.Page, ok = s.int()
		case "limit":
			p.Limit, ok = s.int()
		case "total":
			p.Total, ok = s.int()
		case "pages":
			p.Pages, ok = s.int()
		default:
			ok = scanRecords(s, p, rec)
		}
		return ok
	})
}

func scanRecords[T any](s *refScanner, p *Page[T], rec func(*refScanner, *T) bool) bool {
	if !s.eat('[') {
		return false
	}
	p.Records = make([]T, 0, 64)
	s.ws()
	if s.eat(']') {
		return true
	}
	for {
		s.ws()
		// Read in place: a record read into a local and appended would
		// be moved to the heap, one allocation per record.
		var zero T
		p.Records = append(p.Records, zero)
		if !rec(s, &p.Records[len(p.Records)-1]) {
			return false
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		return s.eat(']')
	}
}

// refFields are TransactionRef's JSON names, in field order; itemFields
// transactionItem's, which start with the same three.
var (
	refFields  = []string{"id", "reference", "status"}
	itemFields = []string{"id", "reference", "status", "amountInCents", "failureReason", "appliedAt", "createdAt"}
)

// itemFieldIndex returns the index of key in itemFields, or -1 (a switch:
// the compiler compares the length first, then the bytes).
func itemFieldIndex(key []byte) int {
	switch string(key) {
	case "id":
		return 0
	case "reference":
		return 1
	case "status":
		return 2
	case "amountInCents":
		return 3
	case "failureReason":
		return 4
	case "appliedAt":
		return 5
	case "createdAt":
		return 6
	}
	return -1
}

// ref reads one TransactionRef.
func (s *refScanner) ref(r *TransactionRef) bool { return s.record(r, nil) }

// item reads one transactionItem.
func (s *refScanner) item(r *transactionItem) bool { return s.record(&r.TransactionRef, r) }

// record reads a transaction object into ref, and into the rest of it
// unless it is nil: the keys of interest are itemFields, or only their
// first three (refFields) without it. Another key is skipped; a key of
// interest twice, or a key that differs from one only in case
// (encoding/json would take it), refuses the object. It walks the object
// without a callback: a closure per key made the page's reading about 10%
// slower (BenchmarkItemPage).
func (s *refScanner) record(ref *TransactionRef, it *transactionItem) bool {
	names := itemFields
	if it == nil {
		names = refFields
	}
	var seen [7]bool
	// The id and the reference are kept as read and made strings at the
	// end, in one allocation for both.
	var id, reference []byte
	more, ok := s.enter()
	for ok && more {
		var key []byte
		if key, ok = s.key(); !ok {
			break
		}
		f := itemFieldIndex(key)
		switch {
		case f < 0 || f >= len(names):
			ok = !foldsTo(key, names...) && s.skip(0)
		case seen[f]:
			ok = false
		case f < len(refFields):
			seen[f] = true
			switch f {
			case 0:
				id, ok = s.raw()
			case 1:
				reference, ok = s.raw()
			default:
				ok = s.refField(f, ref)
			}
		default:
			seen[f] = true
			ok = s.itemField(f, it)
		}
		if ok {
			more, ok = s.next()
		}
	}
	switch {
	case seen[0] && seen[1]:
		var b strings.Builder
		b.Grow(len(id) + len(reference))
		b.Write(id)
		b.Write(reference)
		both := b.String()
		ref.ID, ref.Reference = both[:len(id)], both[len(id):]
	case seen[0]:
		ref.ID = string(id)
	case seen[1]:
		ref.Reference = string(reference)
	}
	return ok
}

// itemField reads field f (itemFields' order) of a transactionItem beyond
// the three of its TransactionRef.
func (s *refScanner) itemField(f int, r *transactionItem) bool {
	if f == 3 {
		n, ok := s.int()
		r.AmountInCents = int64(n)
		return ok
	}
	start := s.i
	if !s.skip(0) {
		return false
	}
	v := s.b[start:s.i]
	switch f {
	case 4:
		return r.FailureReason.UnmarshalJSON(v) == nil
	case 5:
		return r.AppliedAt.UnmarshalJSON(v) == nil
	default:
		return r.CreatedAt.UnmarshalJSON(v) == nil
	}
}

// refField reads field f of a TransactionRef other than the id and the
// reference (which record reads itself): 2, the status, a plain string.
func (s *refScanner) refField(f int, r *TransactionRef) bool {
	v, ok := s.raw()
	r.Status = statusOf(v)
	return ok
}

// enter reads an object's '{' and reports whether a key follows (more is
// false for {}); ok is false when no object starts here. A walk over an
// object is enter, then key, the value, and next, until more is false.
func (s *refScanner) enter() (more, ok bool) {
	if !s.eat('{') {
		return false, false
	}
	s.ws()
	if s.eat('}') {
		return false, true
	}
	return true, true
}

// key reads an object's next key, which must be plain ASCII (raw), and the
// ':' after it, leaving the scanner at the value.
func (s *refScanner) key() ([]byte, bool) {
	s.ws()
	key, ok := s.raw()
	if !ok {
		return nil, false
	}
	s.ws()
	if !s.eat(':') {
		return nil, false
	}
	s.ws()
	return key, true
}

// next reads what follows a value in an object: ',' (more is true) or
// '}' (more is false); ok is false for anything else.
func (s *refScanner) next() (more, ok bool) {
	s.ws()
	if s.eat(',') {
		return true, true
	}
	return false, s.eat('}')
}

// object reads an object, calling field for each key with the scanner at
// the value, which field must consume.
func (s *refScanner) object(field func(key []byte) bool) bool {
	more, ok := s.enter()
	for ok && more {
		var key []byte
		if key, ok = s.key(); !ok || !field(key) {
			return false
		}
		more, ok = s.next()
	}
	return ok
}

// int reads a plain integer (no fraction, no exponent) that fits an int.
func (s *refScanner) int() (int, bool) {
	neg := s.eat('-')
	start := s.i
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		if n > (1<<53)/10 {
			return 0, false
		}
		n = n*10 + int(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 1 && s.b[start] == '0' {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// skip validates and skips any JSON value.
func (s *refScanner) skip(depth int) bool {
	if depth > 64 || s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return true
		}
		for {
			s.ws()
			if !s.skipString() {
				return false
			}
			s.ws()
			if !s.eat(':') {
				return false
			}
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			return s.eat('}')
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			return s.eat(']')
		}
	case c == '"':
		return s.skipString()
	case c == 't':
		return s.word("true")
	case c == 'f':
		return s.word("false")
	case c == 'n':
		return s.word("null")
	default:
		return s.skipNumber()
	}
}

func (s *refScanner) word(w string) bool {
	if len(s.b)-s.i >= len(w) && string(s.b[s.i:s.i+len(w)]) == w {
		s.i += len(w)
		return true
	}
	return false
}

// skipString validates a JSON string (any escape, any byte at or above 0x20).
func (s *refScanner) skipString() bool {
	if !s.eat('"') {
		return false
	}
	// The plain bytes are skipped with a local index: s.i, written back
	// through the pointer on every byte, made this loop a third of the
	// page's reading.
	b, i := s.b, s.i
	for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
		i++
	}
	s.i = i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 {
					return false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				s.i += 5
			default:
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

// skipNumber validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *refScanner) skipNumber() bool {
	s.eat('-')
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.eat('0') {
		// a leading zero stands alone
	} else if digits() == 0 {
		return false
	}
	if s.eat('.') && digits() == 0 {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// statusOf returns the status without allocating for the known ones.
func statusOf(b []byte) TransactionStatus {
	for _, st := range knownTxStatuses {
		if string(b) == string(st) {
			return st
		}
	}
	return TransactionStatus(b)
}

var knownTxStatuses = []TransactionStatus{TransactionPending, TransactionApproved, TransactionFailed,
	TransactionCancelled, TransactionProcessing, TransactionRejected}

func pageFieldIndex(k string) int {
	switch k {
	case "page":
		return 0
	case "limit":
		return 1
	case "total":
		return 2
	case "pages":
		return 3
	}
	return 4
}
