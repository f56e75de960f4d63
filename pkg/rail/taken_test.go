package rail

import "testing"

func TestRefusedAsTaken(t *testing.T) {
	for _, tc := range []struct {
		msg      string
		subjects []string
		want     bool
	}{
		{"The invoice has already been taken.", []string{"invoice"}, true},
		{`{"invoice":["The invoice has already been taken."]}`, []string{"invoice"}, true},
		{"Duplicate invoice", []string{"invoice"}, true},
		{"transaction.id already exists", []string{"transaction", "id"}, true},
		{"The id must be unique", []string{"transaction", "id"}, true},
		{"Transaction ID in use", []string{"transaction", "id"}, true},
		// Refusals of the payee, not of our id.
		{"The beneficiary.document.number field is invalid.", []string{"invoice"}, false},
		{"document [digits] is invalid", []string{"transaction", "id"}, false},
		{"The invoice field is required.", []string{"invoice"}, false},
		{"account already closed", []string{"transaction", "id"}, false},
		// A negation refuses the payee: "exist" alone is not a taken word.
		{"customer_id 1234 does not exist", []string{"transaction", "id"}, false},
		{"The transaction's beneficiary account doesn't exist", []string{"transaction", "id"}, false},
		{"invoice refers to a non-existent merchant", []string{"invoice"}, false},
		{"transaction.id 1234 already exists", []string{"transaction", "id"}, true},
		// A subject only inside another word does not count.
		{"invoices already exported", []string{"invoice"}, false},
		{"idle account already blocked", []string{"id"}, false},
		{"", []string{"invoice"}, false},
	} {
		if got := RefusedAsTaken(tc.msg, tc.subjects...); got != tc.want {
			t.Errorf("RefusedAsTaken(%q, %q) = %v, want %v", tc.msg, tc.subjects, got, tc.want)
		}
	}
}
