package localrun

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Kind is what the marketplace meant a request to exercise.
type Kind uint8

// The kinds of synthetic requests.
const (
	KindImmediate    Kind = iota // pays now, from a well-funded account
	KindScheduled                // dispersion tomorrow
	KindRecurring                // monthly, from tomorrow
	KindInvalid                  // breaks a validation rule: REJECTED at ingest
	KindBankFails                // the simulated bank refuses it with a D* code
	KindCancelled                // the simulated approver cancels it
	KindLowBalance               // from the account with little balance: DEFERRED until a recharge
	KindSmartFastPay             // a Colombian payee paid one by one through SmartFastPay
	KindWEpayout                 // a Brazilian payee paid by PIX through WEpayout
	numKinds
)

var kindNames = [numKinds]string{"immediate", "scheduled", "recurring", "invalid", "bank-fails", "cancelled", "low-balance",
	"smartfastpay", "wepayout"}

func (k Kind) String() string { return kindNames[k] }

// Mix is the share of each kind, in percent of the requests; the rest are
// immediate.
type Mix struct {
	Scheduled, Recurring, Invalid, BankFails, Cancelled, LowBalance int
	// SmartFastPay and WEpayout are the shares paid through those rails
	// (SmartFastPay: COP, rail named; WEpayout: BRL, routed by currency).
	SmartFastPay, WEpayout int
}

// DefaultMix is a realistic day: mostly immediate payouts, some scheduled
// and recurring ones, a few bad requests and bank refusals.
var DefaultMix = Mix{Scheduled: 6, Recurring: 3, Invalid: 4, BankFails: 4, Cancelled: 1, LowBalance: 1,
	SmartFastPay: 4, WEpayout: 4}

// LoadMix is the load run's mix: immediate payouts only, so every request
// goes the whole way to Wompi.
var LoadMix = Mix{}

// Marketplace generates payout requests deterministically from a seed.
type Marketplace struct {
	RunID string
	Mix   Mix
	Now   func() time.Time
	rng   *rand.Rand
	buf   []byte // Next's scratch
}

// NewMarketplace returns a generator; runID prefixes every requestId.
func NewMarketplace(runID string, seed uint64, mix Mix, now func() time.Time) *Marketplace {
	return &Marketplace{RunID: runID, Mix: mix, Now: now, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// RequestID returns the id of the i-th request of the run.
func (m *Marketplace) RequestID(i int) string { return m.RunID + "-" + strconv.Itoa(i) }

// Index parses a request id of this run back into its index; ok is false
// for an id of another run.
func (m *Marketplace) Index(requestID string) (int, bool) {
	if len(requestID) <= len(m.RunID)+1 || requestID[:len(m.RunID)] != m.RunID || requestID[len(m.RunID)] != '-' {
		return 0, false
	}
	i, err := strconv.Atoi(requestID[len(m.RunID)+1:])
	return i, err == nil
}

func (m *Marketplace) kind() Kind {
	p := m.rng.IntN(100)
	for k, share := range []int{m.Mix.Scheduled, m.Mix.Recurring, m.Mix.Invalid, m.Mix.BankFails, m.Mix.Cancelled, m.Mix.LowBalance,
		m.Mix.SmartFastPay, m.Mix.WEpayout} {
		if p < share {
			return Kind(k + 1)
		}
		p -= share
	}
	return KindImmediate
}

var paymentTypes = []payout.PaymentType{payout.PaymentPayroll, payout.PaymentProviders, payout.PaymentOther}
var bankCodes = []string{"1007", "1001", "1051", "1507", "1551", "1809", "1023", "1013"}
var failSuffixes = []string{"007", "010", "019", "021", "002"}
var firstNames = []string{"María", "José", "Luisa", "Andrés", "Camila", "Juan", "Valentina", "Santiago"}

// Next fills r with the i-th request and returns its kind. The request's
// generated strings share one allocation (the load run publishes a million
// of them, and its garbage is collected on the workers' time).
func (m *Marketplace) Next(i int, r *payout.Request) Kind {
	k := m.kind()
	now := m.Now()
	// The random draws, in the order the requests have always drawn them.
	legalID := 10_000_000 + m.rng.IntN(89_999_999)
	bank := bankCodes[m.rng.IntN(len(bankCodes))]
	acctLead, acctBody := 3+m.rng.IntN(6), m.rng.IntN(10_000_000)
	amount := int64(50_000 + m.rng.IntN(5_000_000)) // $500 to $50,500

	b := append(m.buf[:0], m.RunID...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	endID := len(b)
	b = strconv.AppendInt(b, int64(legalID), 10)
	endLegal := len(b)
	b = append(append(b, firstNames[i%len(firstNames)]...), " Payee "...)
	b = strconv.AppendInt(b, int64(i), 10)
	endName := len(b)
	b = strconv.AppendInt(append(b, "payee"...), int64(i), 10)
	b = append(b, "@example.co"...)
	endEmail := len(b)
	b = strconv.AppendInt(b, int64(acctLead), 10)
	b = appendPadded(b, int64(acctBody), 7)
	b = append(b, '4')
	endAcct := len(b)
	// A rail's payee: SmartFastPay's 11-digit document and Colombian
	// mobile (its last two digits steer the simulator; 13: failed), or
	// WEpayout's PIX key (05: rejected, 06: cancelled).
	var endExtra1, endExtra2 int
	switch k {
	case KindSmartFastPay:
		b = appendPadded(b, 10_000_000_000+int64(m.rng.IntN(89_999_999))*100+int64(i%100), 11)
		endExtra1 = len(b)
		b = appendPadded(append(b, "5730"...), int64(m.rng.IntN(1_000_000)), 6)
		b = appendPadded(b, int64(sfpPhoneEndings[i%len(sfpPhoneEndings)]), 2)
		endExtra2 = len(b)
	case KindWEpayout:
		amount = int64(1_000 + m.rng.IntN(500_000)) // R$10 to R$5,010
		b = strconv.AppendInt(append(b, "payee"...), int64(i), 10)
		b = appendPadded(b, int64(wepKeyEndings[i%len(wepKeyEndings)]), 2)
		b = append(b, "@example.com"...)
		endExtra1 = len(b)
	}
	m.buf = b
	str := string(b)

	*r = payout.Request{
		RequestID:       str[:endID],
		OriginAccountID: wompitest.AccountMain,
		PaymentType:     paymentTypes[i%len(paymentTypes)],
		Beneficiary: payout.Beneficiary{
			LegalIDType:   payout.LegalCC,
			LegalID:       str[endID:endLegal],
			Name:          str[endLegal:endName],
			Email:         str[endName:endEmail],
			BankCode:      bank,
			AccountType:   payout.AccountAhorros,
			AccountNumber: str[endEmail:endAcct],
		},
		AmountInCents: amount,
		Currency:      rail.Currency(rail.Wompi),
		RequestedAt:   now,
	}
	if i%3 == 1 {
		r.OriginAccountID = wompitest.AccountSecondary
		r.Beneficiary.AccountType = payout.AccountCorriente
	}
	switch k {
	case KindScheduled:
		r.DispersionDatetime = tomorrowAtNine(now)
	case KindRecurring:
		r.DispersionDatetime = tomorrowAtNine(now)
		r.Recurring = &payout.Recurring{Interval: payout.IntervalMonth, Months: 3}
	case KindInvalid:
		switch i % 4 {
		case 0:
			r.Beneficiary.AccountNumber = "0000000"
		case 1:
			r.Beneficiary.Email = "not-an-email"
		case 2:
			r.AmountInCents = 0
		default:
			r.Beneficiary.BankCode = "9999"
		}
	case KindBankFails:
		an := r.Beneficiary.AccountNumber
		r.Beneficiary.AccountNumber = an[:len(an)-3] + failSuffixes[i%len(failSuffixes)]
	case KindCancelled:
		r.Beneficiary.AccountNumber = "999" + r.Beneficiary.AccountNumber[3:]
	case KindLowBalance:
		r.OriginAccountID = wompitest.AccountLow
	case KindSmartFastPay:
		name := smartFastPayRail
		r.Rail = &name
		r.Beneficiary.LegalID = str[endAcct:endExtra1]
		phone := str[endExtra1:endExtra2]
		r.Beneficiary.Phone = &phone
	case KindWEpayout:
		// BRL: routed by currency.
		r.Currency = "BRL"
		r.Beneficiary.LegalIDType = payout.LegalCPF
		r.Beneficiary.LegalID = "52998224725"
		r.Beneficiary.BankCode, r.Beneficiary.AccountNumber = "", ""
		key := str[endAcct:endExtra1]
		r.Beneficiary.PixKey = &key
	}
	return k
}

// appendPadded appends v (not negative) in decimal, zero-padded to width
// digits: fmt's %0<width>d.
func appendPadded(dst []byte, v int64, width int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], v, 10)
	for range width - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

const smartFastPayRail = "smartfastpay"

// tomorrowAtNine is 09:00 in Bogotá on the day after now's there: a
// scheduled request's dispersion time. Only scheduled and recurring
// requests compute it (its day arithmetic formats and parses dates).
func tomorrowAtNine(now time.Time) *time.Time {
	bogota := rail.Location(rail.Wompi)
	t := payout.DayIn(now, bogota).Next().StartIn(bogota).Add(9 * time.Hour)
	return &t
}

// The simulators' outcomes by the payee's last digits: mostly paid, a few
// refusals (docs/rails/smartfastpay.md, docs/rails/wepayout.md).
var (
	sfpPhoneEndings = []int{10, 11, 12, 14, 15, 16, 17, 18, 19, 13, 21} // 13: failed; 21: paid, then refunded
	wepKeyEndings   = []int{0, 1, 2, 3, 8, 9, 10, 11, 12, 5, 6}         // 05: rejected, 06: cancelled
)
