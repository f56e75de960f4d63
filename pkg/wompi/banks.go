package wompi

// ColombianBank is one entry of the Colombian bank-code table published by
// Wompi (seeds 002, section 7). Wompi resolves each code to a bankId UUID
// through GET /banks (Bank); the dispatcher does that at run time.
type ColombianBank struct {
	Code string
	Name string
}

// ColombianBanks is the published Colombian bank-code table, in the order
// Wompi lists it. Validate refuses a request whose bank code is not in it
// (and that gives no bankId).
var ColombianBanks = []ColombianBank{
	{Code: "1001", Name: "BANCO DE BOGOTA"},
	{Code: "1002", Name: "BANCO POPULAR"},
	{Code: "1006", Name: "ITAU before Corpbanca"},
	{Code: "1007", Name: "BANCOLOMBIA"},
	{Code: "1009", Name: "CITIBANK"},
	{Code: "1012", Name: "BANCO GNB SUDAMERIS"},
	{Code: "1013", Name: "BBVA COLOMBIA"},
	{Code: "1014", Name: "ITAU"},
	{Code: "1019", Name: "SCOTIABANK COLPATRIA S.A"},
	{Code: "1023", Name: "BANCO DE OCCIDENTE"},
	{Code: "1031", Name: "BANCOLDEX S.A."},
	{Code: "1032", Name: "BANCO CAJA SOCIAL BCSC SA"},
	{Code: "1040", Name: "BANCO AGRARIO"},
	{Code: "1047", Name: "BANCO MUNDO MUJER"},
	{Code: "1051", Name: "BANCO DAVIVIENDA SA"},
	{Code: "1052", Name: "BANCO AV VILLAS"},
	{Code: "1053", Name: "BANCO W S.A"},
	{Code: "1059", Name: "BANCAMIA S.A"},
	{Code: "1060", Name: "BANCO PICHINCHA"},
	{Code: "1061", Name: "BANCOOMEVA"},
	{Code: "1062", Name: "BANCO FALABELLA S.A."},
	{Code: "1063", Name: "BANCO FINANDINA S.A."},
	{Code: "1065", Name: "BANCO SANTANDER DE NEGOCIOS CO"},
	{Code: "1066", Name: "BANCO COOPERATIVO COOPCENTRAL"},
	{Code: "1067", Name: "MIBANCO S.A."},
	{Code: "1069", Name: "BANCO SERFINANZA S.A"},
	{Code: "1070", Name: "LULO BANK S.A."},
	{Code: "1071", Name: "BANCO J.P. MORGAN COLOMBIA S.A"},
	{Code: "1121", Name: "FINANCIERA JURISCOOP S.A. COMP"},
	{Code: "1283", Name: "COOPERATIVA FINANCIERA DE ANTI"},
	{Code: "1286", Name: "JFK COOPERATIVA FINANCIERA"},
	{Code: "1289", Name: "COOTRAFA COOPERATIVA FINANCIER"},
	{Code: "1292", Name: "CONFIAR COOPERATIVA FINANCIERA"},
	{Code: "1303", Name: "BANCO UNION S.A"},
	{Code: "1370", Name: "COLTEFINANCIERA S.A"},
	{Code: "1507", Name: "NEQUI"},
	{Code: "1551", Name: "DAVIPLATA"},
	{Code: "1558", Name: "BANCO CREDIFINANCIERA SA."},
	{Code: "1560", Name: "PIBANK"},
	{Code: "1637", Name: "IRIS"},
	{Code: "1801", Name: "MOVII"},
	{Code: "1802", Name: "DING TECNIPAGOS SA"},
	{Code: "1803", Name: "POWWI"},
	{Code: "1804", Name: "Ualá"},
	{Code: "1805", Name: "BANCO BTG PACTUAL"},
	{Code: "1808", Name: "BOLD CF"},
	{Code: "1809", Name: "NU"},
	{Code: "1811", Name: "RAPPIPAY"},
	{Code: "1812", Name: "COINK"},
	{Code: "1814", Name: "GLOBAL66"},
	{Code: "1819", Name: "BANCO CONTACTAR S.A."},
}

var bankByCode = func() map[string]ColombianBank {
	m := make(map[string]ColombianBank, len(ColombianBanks))
	for _, b := range ColombianBanks {
		m[b.Code] = b
	}
	return m
}()

// BankByCode returns the bank with the given Colombian bank code.
func BankByCode(code string) (ColombianBank, bool) {
	b, ok := bankByCode[code]
	return b, ok
}
