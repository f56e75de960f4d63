package wompi

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// AppendCreatePayoutBody appends the JSON body of POST /payouts for r to dst
// and returns the extended buffer. It is hand written (no reflection) so that
// a 1,000-transaction batch encodes with a handful of allocations. The
// recurrence interval is lower-cased; the dispersion time is rendered with
// FormatDispersion; zero optional fields are omitted.
func AppendCreatePayoutBody(dst []byte, r *CreatePayoutRequest) []byte {
	dst = append(dst, `{"reference":`...)
	dst = appendString(dst, r.Reference)
	dst = append(dst, `,"accountId":`...)
	dst = appendString(dst, r.AccountID)
	dst = append(dst, `,"paymentType":`...)
	dst = appendString(dst, r.PaymentType)
	if !r.DispersionDatetime.IsZero() {
		dst = append(dst, `,"dispersionDatetime":"`...)
		dst = r.DispersionDatetime.In(Bogota).AppendFormat(dst, DispersionLayout)
		dst = append(dst, '"')
	}
	if rc := r.Recurring; rc != nil {
		dst = append(dst, `,"recurring":{"interval":`...)
		dst = appendString(dst, strings.ToLower(rc.Interval))
		dst = append(dst, `,"months":`...)
		dst = strconv.AppendInt(dst, int64(rc.Months), 10)
		if rc.Description != "" {
			dst = append(dst, `,"description":`...)
			dst = appendString(dst, rc.Description)
		}
		dst = append(dst, '}')
	}
	if r.TransactionStatus != "" {
		dst = append(dst, `,"transactionStatus":`...)
		dst = appendString(dst, r.TransactionStatus)
	}
	dst = append(dst, `,"transactions":[`...)
	for i := range r.Transactions {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendTransaction(dst, &r.Transactions[i])
	}
	return append(dst, "]}"...)
}

func appendTransaction(dst []byte, t *TransactionRequest) []byte {
	dst = append(dst, `{"legalIdType":`...)
	dst = appendString(dst, t.LegalIDType)
	dst = append(dst, `,"legalId":`...)
	dst = appendString(dst, t.LegalID)
	dst = append(dst, `,"bankId":`...)
	dst = appendString(dst, t.BankID)
	dst = append(dst, `,"accountType":`...)
	dst = appendString(dst, t.AccountType)
	dst = append(dst, `,"accountNumber":`...)
	dst = appendString(dst, t.AccountNumber)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, t.Name)
	dst = append(dst, `,"email":`...)
	dst = appendString(dst, t.Email)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, t.Amount, 10)
	dst = append(dst, `,"reference":`...)
	dst = appendString(dst, t.Reference)
	if t.PersonType != "" {
		dst = append(dst, `,"personType":`...)
		dst = appendString(dst, t.PersonType)
	}
	if t.Phone != "" {
		dst = append(dst, `,"phone":`...)
		dst = appendString(dst, t.Phone)
	}
	if t.Description != "" {
		dst = append(dst, `,"description":`...)
		dst = appendString(dst, t.Description)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping like encoding/json
// (quotes, backslash, control characters, U+2028/U+2029, and replacing
// invalid UTF-8 with U+FFFD).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
