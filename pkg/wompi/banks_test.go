package wompi

import "testing"

func TestBanks(t *testing.T) {
	if len(ColombianBanks) != 51 {
		t.Fatalf("%d banks, want the 51 of the published table", len(ColombianBanks))
	}
	for code, name := range map[string]string{"1007": "BANCOLOMBIA", "1001": "BANCO DE BOGOTA", "1051": "BANCO DAVIVIENDA SA", "1507": "NEQUI", "1551": "DAVIPLATA", "1809": "NU"} {
		if b, ok := BankByCode(code); !ok || b.Name != name {
			t.Errorf("BankByCode(%s) = %+v, %v", code, b, ok)
		}
	}
}
