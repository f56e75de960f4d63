package localrun

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// Kind is what the marketplace meant a request to exercise.
type Kind uint8

// The kinds of synthetic requests.
const (
	KindImmediate  Kind = iota // pays now, from a well-funded account
	KindScheduled              // dispersion tomorrow
	KindRecurring              // monthly, from tomorrow
	KindInvalid                // breaks a validation rule: REJECTED at ingest
	KindBankFails              // the simulated bank refuses it with a D* code
	KindCancelled              // the simulated approver cancels it
	KindLowBalance             // from the account with little balance: DEFERRED until a recharge
	numKinds
)

var kindNames = [numKinds]string{"immediate", "scheduled", "recurring", "invalid", "bank-fails", "cancelled", "low-balance"}

func (k Kind) String() string { return kindNames[k] }

// Mix is the share of each kind, in percent of the requests; the rest are
// immediate.
type Mix struct {
	Scheduled, Recurring, Invalid, BankFails, Cancelled, LowBalance int
}

// DefaultMix is a realistic day: mostly immediate payouts, some scheduled
// and recurring ones, a few bad requests and bank refusals.
var DefaultMix = Mix{Scheduled: 6, Recurring: 3, Invalid: 4, BankFails: 4, Cancelled: 1, LowBalance: 1}

// LoadMix is the load run's mix: immediate payouts only, so every request
// goes the whole way to Wompi.
var LoadMix = Mix{}

// Marketplace generates payout requests deterministically from a seed.
type Marketplace struct {
	RunID string
	Mix   Mix
	Now   func() time.Time
	rng   *rand.Rand
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
	for k, share := range []int{m.Mix.Scheduled, m.Mix.Recurring, m.Mix.Invalid, m.Mix.BankFails, m.Mix.Cancelled, m.Mix.LowBalance} {
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

// Next fills r with the i-th request and returns its kind.
func (m *Marketplace) Next(i int, r *payout.Request) Kind {
	k := m.kind()
	now := m.Now()
	*r = payout.Request{
		RequestID:       m.RequestID(i),
		OriginAccountID: wompitest.AccountMain,
		PaymentType:     paymentTypes[i%len(paymentTypes)],
		Beneficiary: payout.Beneficiary{
			LegalIDType:   payout.LegalCC,
			LegalID:       strconv.Itoa(10_000_000 + m.rng.IntN(89_999_999)),
			Name:          firstNames[i%len(firstNames)] + " Payee " + strconv.Itoa(i),
			Email:         "payee" + strconv.Itoa(i) + "@example.co",
			BankCode:      bankCodes[m.rng.IntN(len(bankCodes))],
			AccountType:   payout.AccountAhorros,
			AccountNumber: fmt.Sprintf("%d%07d4", 3+m.rng.IntN(6), m.rng.IntN(10_000_000)),
		},
		AmountInCents: int64(50_000 + m.rng.IntN(5_000_000)), // $500 to $50,500
		Currency:      payout.Currency,
		RequestedAt:   now,
	}
	if i%3 == 1 {
		r.OriginAccountID = wompitest.AccountSecondary
		r.Beneficiary.AccountType = payout.AccountCorriente
	}
	tomorrow := payout.DayOf(now).Next().Start().Add(9 * time.Hour)
	switch k {
	case KindScheduled:
		r.DispersionDatetime = &tomorrow
	case KindRecurring:
		r.DispersionDatetime = &tomorrow
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
	}
	return k
}
