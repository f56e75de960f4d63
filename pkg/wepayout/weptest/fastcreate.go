package weptest

import (
	"bytes"
	"encoding/json"

	"github.com/wompi-payouts/pipeline/pkg/plainjson"
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
	str := map[string]*string{
		"payment_method": &b.PaymentMethod, "currency": &b.Currency, "country": &b.Country, "invoice": &b.Invoice,
		"bank_code": &b.BankCode, "bank_branch": &b.BankBranch, "bank_branch_digit": &b.BankBranchDigit,
		"account": &b.Account, "account_digit": &b.AccountDigit, "account_type": &b.AccountType,
		"description": &b.Description, "notification_url": &b.NotificationURL, "purpose": &b.Purpose,
	}
	names := []string{"amount", "merchant_id", "beneficiary", "pix"}
	for k := range str {
		names = append(names, k)
	}
	seen := map[string]bool{}
	ok = p.Object(func(key []byte) bool {
		k := string(key)
		if seen[k] {
			return false
		}
		seen[k] = true
		if dst := str[k]; dst != nil {
			s, ok := p.Str()
			*dst = s
			return ok
		}
		switch k {
		case "amount", "merchant_id":
			start := p.I
			if _, ok := p.Text(); !ok {
				return false
			}
			v := json.RawMessage(raw[start:p.I])
			if k == "amount" {
				b.Amount = v
			} else {
				b.MerchantID = v
			}
			return true
		case "beneficiary":
			b.Beneficiary = &struct {
				Name     string `json:"name"`
				Document *struct {
					Type   string `json:"type"`
					Number string `json:"number"`
				} `json:"document"`
			}{}
			return p.Byte('{') && readMembers(&p, map[string]func() bool{
				"name": func() bool { s, ok := p.Str(); b.Beneficiary.Name = s; return ok },
				"document": func() bool {
					d := &struct {
						Type   string `json:"type"`
						Number string `json:"number"`
					}{}
					b.Beneficiary.Document = d
					return p.Byte('{') && readMembers(&p, map[string]func() bool{
						"type":   func() bool { s, ok := p.Str(); d.Type = s; return ok },
						"number": func() bool { s, ok := p.Str(); d.Number = s; return ok },
					})
				},
			})
		case "pix":
			b.PIX = &struct {
				Key string `json:"pix_key"`
			}{}
			return p.Byte('{') && readMembers(&p, map[string]func() bool{
				"pix_key": func() bool { s, ok := p.Str(); b.PIX.Key = s; return ok },
			})
		}
		return !foldsToAny(key, names) && p.Skip()
	})
	return b, ok && p.End()
}

// readMembers reads an object's members, its '{' already read: a key of
// fields with its reader, each at most once; another key is skipped unless
// it differs from one of fields' only in case.
func readMembers(p *plainjson.Scanner, fields map[string]func() bool) bool {
	seen := map[string]bool{}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	return p.Object(func(key []byte) bool {
		if read := fields[string(key)]; read != nil {
			if seen[string(key)] {
				return false
			}
			seen[string(key)] = true
			return read()
		}
		return !foldsToAny(key, names) && p.Skip()
	})
}

// foldsToAny reports whether key matches one of names under
// encoding/json's case-insensitive field matching.
func foldsToAny(key []byte, names []string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}
