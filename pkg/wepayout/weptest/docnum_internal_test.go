package weptest

import (
	"math/rand/v2"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wepayout"
)

// TestDocumentChecksAgree: the simulator's check-digit arithmetic and the
// client's are written apart; they must agree on every input, valid ones
// included (built by completing random stems).
func TestDocumentChecksAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	digitsOf := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	valid := 0
	for range 20000 {
		for _, s := range []string{digitsOf(11), digitsOf(14)} {
			if cpfOK(s) != wepayout.ValidCPF(s) || cnpjOK(s) != wepayout.ValidCNPJ(s) {
				t.Fatalf("%s: sim CPF %v CNPJ %v, client %v %v", s, cpfOK(s), cnpjOK(s), wepayout.ValidCPF(s), wepayout.ValidCNPJ(s))
			}
		}
		cpf := digitsOf(9)
		cpf += string(mod11(cpf, 10, false))
		cpf += string(mod11(cpf, 11, false))
		cnpj := digitsOf(12)
		cnpj += string(mod11(cnpj, 5, true))
		cnpj += string(mod11(cnpj, 6, true))
		if !sameDigits(cpf) {
			valid++
			if !cpfOK(cpf) || !wepayout.ValidCPF(cpf) {
				t.Fatalf("completed CPF %s refused", cpf)
			}
		}
		if !sameDigits(cnpj) && (!cnpjOK(cnpj) || !wepayout.ValidCNPJ(cnpj)) {
			t.Fatalf("completed CNPJ %s refused", cnpj)
		}
	}
	if valid == 0 {
		t.Fatal("no valid CPF generated")
	}
}

// ValidCPF / ValidCNPJ test vectors checked by hand: 529.982.247-25 and
// 11.222.333/0001-81 are the textbook examples.
func TestDocumentVectors(t *testing.T) {
	if !cpfOK("52998224725") || cpfOK("52998224726") || !cnpjOK("11222333000181") || cnpjOK("11222333000182") {
		t.Fatal("textbook vectors")
	}
}
