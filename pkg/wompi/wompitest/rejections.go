package wompitest

import (
	"strings"
)

// RejectionCodes are the bank rejection codes Wompi documents, all of
// status FAILED [doc]. The simulator can produce every one of them by a
// deterministic rule (see CodeInName, RejectionByData and FailureRules).
var RejectionCodes = []FailureRule{
	{Code: "D02", Message: "Bank does not exist"},
	{Code: "D04", Message: "Invalid transaction type"},
	{Code: "D06", Message: "Payment office not numeric"},
	{Code: "D07", Message: "Account number does not exist"},
	{Code: "D09", Message: "Reference code not numeric"},
	{Code: "D10", Message: "Account not authorized for credit"},
	{Code: "D11", Message: "Account and Nit do not match"},
	{Code: "D12", Message: "Provider Nit not registered for payments"},
	{Code: "D14", Message: "Wrong value in non-monetary transaction"},
	{Code: "D15", Message: "Check or cash payment not allowed"},
	{Code: "D18", Message: "Nit not numeric"},
	{Code: "D19", Message: "Insufficient funds"},
	{Code: "D21", Message: "Beneficiary name missing"},
	{Code: "D24", Message: "Value 0 in destination"},
	{Code: "D25", Message: "Nit in zeros"},
	{Code: "D29", Message: "Payer Nit not registered for card services"},
	{Code: "D30", Message: "Invalid transaction for payment type"},
	{Code: "D31", Message: "Cancelled pension account status"},
	{Code: "D32", Message: "Bank code not numeric"},
	{Code: "D33", Message: "Bank code in zeros"},
	{Code: "D34", Message: "Account number not numeric"},
	{Code: "D35", Message: "Invalid application date"},
	{Code: "D37", Message: "Invalid office"},
	{Code: "D39", Message: "Invalid identification type"},
	{Code: "D40", Message: "Office not authorized for transaction"},
	{Code: "D41", Message: "Payment without authorized ID"},
	{Code: "D44", Message: "Pensioner not registered for the entity"},
	{Code: "D45", Message: "Pension account not registered for paying entity"},
	{Code: "D49", Message: "Bank code not allowed"},
}

var rejectionByCode = func() map[string]FailureRule {
	m := make(map[string]FailureRule, len(RejectionCodes))
	for _, r := range RejectionCodes {
		m[r.Code] = r
	}
	return m
}()

// CodeInName is the rule that reaches every documented code [ours]: a
// payee whose name ends in " D" and a documented code's two digits (e.g.
// "Ana Test D34") settles FAILED with that code. Such a name passes both
// our ingest validation and the simulator's, and no real name ends so.
func CodeInName(name string) (FailureRule, bool) {
	i := strings.LastIndexByte(name, ' ')
	if i < 0 || len(name)-i != 4 || name[i+1] != 'D' {
		return FailureRule{}, false
	}
	r, ok := rejectionByCode[name[i+1:]]
	return r, ok
}

// RejectionByData are the rules whose cause the documented code itself
// names [doc: the code's description; ours: that the simulator applies
// it]: a NIT that is not numeric settles D18 ("Nit not numeric"), a NIT of
// zeros D25 ("Nit in zeros"). The 400 validation lets both through (legalId
// is 1-20 letters or digits); our ingest refuses both.
func RejectionByData(legalIDType, legalID string) (FailureRule, bool) {
	if legalIDType != "NIT" || legalID == "" {
		return FailureRule{}, false
	}
	zeros := true
	for i := 0; i < len(legalID); i++ {
		c := legalID[i]
		if c < '0' || c > '9' {
			return rejectionByCode["D18"], true
		}
		zeros = zeros && c == '0'
	}
	if zeros {
		return rejectionByCode["D25"], true
	}
	return FailureRule{}, false
}

// CodeUnsupportedMediaType answers a POST /payouts whose Content-Type is
// not application/json [ours: the code].
const CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
