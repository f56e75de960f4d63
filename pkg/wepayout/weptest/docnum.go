package weptest

// The simulator's own check-digit arithmetic (not the client's, so that a
// bug in one is caught by the other: see TestDocumentChecksAgree).

// mod11 returns the check digit of ds under weights counting down from
// top, wrapping to 2 after 9 when wrap is set (CNPJ) [Receita Federal].
func mod11(ds string, top int, wrap bool) byte {
	sum, w := 0, top
	for i := 0; i < len(ds); i++ {
		sum += int(ds[i]-'0') * w
		w--
		if wrap && w < 2 {
			w = 9
		}
	}
	r := sum % 11
	if r < 2 {
		return '0'
	}
	return byte('0' + 11 - r)
}

func sameDigits(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] != s[0] {
			return false
		}
	}
	return true
}

// cpfOK: 11 digits, not all equal, both check digits right.
func cpfOK(s string) bool {
	if len(s) != 11 || !digits(s) || sameDigits(s) {
		return false
	}
	return mod11(s[:9], 10, false) == s[9] && mod11(s[:10], 11, false) == s[10]
}

// cnpjOK: 14 digits, not all equal, both check digits right.
func cnpjOK(s string) bool {
	if len(s) != 14 || !digits(s) || sameDigits(s) {
		return false
	}
	return mod11(s[:12], 5, true) == s[12] && mod11(s[:13], 6, true) == s[13]
}
