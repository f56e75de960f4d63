package weptest

import (
	"encoding/json"
	"strconv"

	"github.com/wompi-payouts/pipeline/pkg/plainjson"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// readCreateBody reads a create's body written plainly (plainjson): each
// known key at most once and spelled exactly, strings without escapes, no
// nulls, unknown keys skipped, nothing after the object. It declines (ok
// false) anything else, which json.Unmarshal then reads as before; when it
// accepts, json.Unmarshal gives the same createBody
// (FuzzCreateBodyMatchesEncodingJSON). encoding/json reading this body was
// 8% of the simulator's CPU in a WEpayout load run.
func readCreateBody(raw []byte) (b createBody, ok bool) {
	p := plainjson.Scanner{B: raw}
	p.Space()
	if !p.Byte('{') {
		return b, false
	}
	var seen uint32
	ok = p.Object(func(key []byte) bool {
		k, dst := bodyField(&b, key)
		if k < 0 {
			return !plainjson.Folds(key, bodyKeys...) && p.Skip()
		}
		if seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		if dst != nil {
			s, ok := p.Str()
			*dst = s
			return ok
		}
		switch string(key) {
		case "amount", "merchant_id":
			start := p.I
			if _, ok := p.Text(); !ok {
				return false
			}
			if v := json.RawMessage(raw[start:p.I]); key[0] == 'a' {
				b.Amount = v
			} else {
				b.MerchantID = v
			}
			return true
		case "beneficiary":
			b.Beneficiary = &beneficiaryWire{}
			return p.Byte('{') && readBeneficiary(&p, b.Beneficiary)
		case "pix":
			b.PIX = &pixWire{}
			var key bool
			return p.Byte('{') && p.Object(func(k []byte) bool {
				switch {
				case string(k) == "pix_key" && !key:
					key = true
					s, ok := p.Str()
					b.PIX.Key = s
					return ok
				case plainjson.Folds(k, "pix_key"):
					return false
				}
				return p.Skip()
			})
		}
		return false
	})
	return b, ok && p.End()
}

// bodyKeys are createBody's keys.
var bodyKeys = []string{"payment_method", "currency", "country", "invoice", "bank_code", "bank_branch",
	"bank_branch_digit", "account", "account_digit", "account_type", "description", "notification_url", "purpose",
	"amount", "merchant_id", "beneficiary", "pix"}

// bodyField returns key's index in bodyKeys (-1: none) and, for a string
// field, where it goes.
func bodyField(b *createBody, key []byte) (int, *string) {
	switch string(key) {
	case "payment_method":
		return 0, &b.PaymentMethod
	case "currency":
		return 1, &b.Currency
	case "country":
		return 2, &b.Country
	case "invoice":
		return 3, &b.Invoice
	case "bank_code":
		return 4, &b.BankCode
	case "bank_branch":
		return 5, &b.BankBranch
	case "bank_branch_digit":
		return 6, &b.BankBranchDigit
	case "account":
		return 7, &b.Account
	case "account_digit":
		return 8, &b.AccountDigit
	case "account_type":
		return 9, &b.AccountType
	case "description":
		return 10, &b.Description
	case "notification_url":
		return 11, &b.NotificationURL
	case "purpose":
		return 12, &b.Purpose
	case "amount":
		return 13, nil
	case "merchant_id":
		return 14, nil
	case "beneficiary":
		return 15, nil
	case "pix":
		return 16, nil
	}
	return -1, nil
}

// readBeneficiary reads beneficiary's members, its '{' already read.
func readBeneficiary(p *plainjson.Scanner, w *beneficiaryWire) bool {
	var name, doc bool
	return p.Object(func(key []byte) bool {
		var ok bool
		switch {
		case string(key) == "name" && !name:
			name = true
			w.Name, ok = p.Str()
			return ok
		case string(key) == "document" && !doc:
			doc = true
			w.Document = &documentWire{}
			var typ, num bool
			return p.Byte('{') && p.Object(func(k []byte) bool {
				switch {
				case string(k) == "type" && !typ:
					typ = true
					w.Document.Type, ok = p.Str()
					return ok
				case string(k) == "number" && !num:
					num = true
					w.Document.Number, ok = p.Str()
					return ok
				case plainjson.Folds(k, "type", "number"):
					return false
				}
				return p.Skip()
			})
		case plainjson.Folds(key, "name", "document"):
			return false
		}
		return p.Skip()
	})
}

// appendCreateView appends json.Marshal(s.createView(p))'s bytes
// (TestCreateViewBytes). s.mu held.
func (s *Server) appendCreateView(dst []byte, p *payment) []byte {
	dst = append(dst, `{"amount":`...)
	dst = plainjson.AppendString(dst, "R$"+wepayout.FormatReais(p.cents))
	dst = append(dst, `,"created_at":`...)
	dst = plainjson.AppendString(dst, apiTime(p.createdAt))
	dst = append(dst, `,"currency":"BRL","id":`...)
	dst = strconv.AppendInt(dst, p.id, 10)
	dst = append(dst, `,"invoice":`...)
	dst = plainjson.AppendString(dst, p.invoice)
	dst = append(dst, `,"status":{"id":`...)
	dst = strconv.AppendInt(dst, int64(p.status), 10)
	dst = append(dst, `,"name":`...)
	dst = plainjson.AppendString(dst, statusName(p.status))
	return append(dst, "}}"...)
}

// appendEmptyPage appends json.Marshal(pageView(empty, ...))'s bytes
// (TestEmptyPageBytes).
func appendEmptyPage(dst []byte, page, per, last, total int, link func(int) any) []byte {
	appendLink := func(dst []byte, n int) []byte {
		if l, ok := link(n).(string); ok {
			return plainjson.AppendString(dst, l)
		}
		return append(dst, "null"...)
	}
	dst = append(dst, `{"data":[],"links":{"first":`...)
	dst = appendLink(dst, 1)
	dst = append(dst, `,"last":`...)
	dst = appendLink(dst, last)
	dst = append(dst, `,"next":`...)
	dst = appendLink(dst, page+1)
	dst = append(dst, `,"prev":`...)
	dst = appendLink(dst, page-1)
	dst = append(dst, `},"meta":{"current_page":`...)
	dst = strconv.AppendInt(dst, int64(page), 10)
	dst = append(dst, `,"last_page":`...)
	dst = strconv.AppendInt(dst, int64(last), 10)
	dst = append(dst, `,"per_page":`...)
	dst = strconv.AppendInt(dst, int64(per), 10)
	dst = append(dst, `,"total":`...)
	dst = strconv.AppendInt(dst, int64(total), 10)
	return append(dst, "}}"...)
}
