package ctl

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestFetchReportRefusalQuotesNoPayeeData: a transactions report whose
// first line is not the expected header (a report without a header row, or
// a preamble line) is refused, and the refusal, which payoutsctl prints
// whatever --reveal says, must not quote that line: in a headerless report
// it is a payee's row (legal id, account number, email).
func TestFetchReportRefusalQuotesNoPayeeData(t *testing.T) {
	const row = "tx-1,req-1,APPROVED,150000,CC,1020304050,0012345678901,ana.gomez@example.com\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, row+row)
	}))
	defer srv.Close()
	_, err := fetchReport(context.Background(), srv.URL)
	if err == nil {
		t.Fatal("a report without its header was read")
	}
	for _, leak := range []string{"1020304050", "0012345678901", "ana.gomez@example.com"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the refusal quotes %q: %v", leak, err)
		}
	}
	if !strings.Contains(err.Error(), `"id"`) {
		t.Errorf("the refusal does not name the missing column: %v", err)
	}
}
