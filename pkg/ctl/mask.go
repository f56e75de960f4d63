package ctl

import (
	"github.com/wompi-payouts/pipeline/pkg/ops"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// masker hides personal data unless reveal was asked for explicitly. It
// only composes the project's masking helpers: ops.Mask for ids and
// numbers, wompi.MaskEmail for emails, smartfastpay.Mask for free text a
// provider may echo personal data in.
type masker struct{ reveal bool }

// id masks a legal id, an account number or a phone: at most its last four
// characters stay.
func (m masker) id(s string) string {
	if m.reveal || s == "" {
		return s
	}
	return ops.Mask(s)
}

// account masks an account number, keeping its last four digits.
func (m masker) account(s string) string {
	if m.reveal || s == "" {
		return s
	}
	return wompi.MaskAccountNumber(s)
}

func (m masker) email(s string) string {
	if m.reveal || s == "" {
		return s
	}
	return wompi.MaskEmail(s)
}

// name keeps the first letter.
func (m masker) name(s string) string {
	if m.reveal || s == "" {
		return s
	}
	r := []rune(s)
	return string(r[:1]) + "***"
}

// text removes emails and long digit runs from a free-text message.
func (m masker) text(s string) string {
	if m.reveal {
		return s
	}
	return smartfastpay.Mask(s)
}
