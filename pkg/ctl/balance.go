package ctl

import (
	"context"
	"strconv"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/railconfig"
	"github.com/wompi-payouts/pipeline/pkg/smartfastpay"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// BalanceResult is each enabled rail's balances and limits, from the
// provider.
type BalanceResult struct {
	Accounts []AccountBalance `json:"accounts"`
	Limits   []RailLimits     `json:"limits"`
}

// AccountBalance is one origin account at the provider.
type AccountBalance struct {
	Rail             string `json:"rail"`
	AccountID        string `json:"accountId"`
	Number           string `json:"number"`
	Bank             string `json:"bank"`
	Status           string `json:"status"`
	BalanceInCents   int64  `json:"balanceInCents"`
	DailyLimit       int64  `json:"dailyLimitInCents,omitempty"`
	DailyConsumed    int64  `json:"dailyConsumedInCents,omitempty"`
	DailyAvailable   int64  `json:"dailyAvailableInCents,omitempty"`
	HasAccountLimits bool   `json:"hasAccountLimits"`
}

// RailLimits is a rail's client-wide limits for today.
type RailLimits struct {
	Rail                 string `json:"rail"`
	Day                  string `json:"day,omitempty"`
	DailyLimit           int64  `json:"dailyLimitInCents"`
	DailyConsumed        int64  `json:"dailyConsumedInCents"`
	DailyAvailable       int64  `json:"dailyAvailableInCents"`
	TransactionsConsumed int64  `json:"transactionsConsumed"`
	BatchesConsumed      int64  `json:"batchesConsumed"`
}

// Balance asks the provider: GET /accounts (balances) and GET /limits.
// Account numbers are masked unless --reveal.
func (t *Tool) Balance(ctx context.Context) (*BalanceResult, error) {
	wc, err := t.wompi()
	if err != nil {
		return nil, err
	}
	accs, err := wc.Accounts(ctx, wompi.AccountsFilter{})
	if err != nil {
		return nil, err
	}
	lim, err := wc.Limits(ctx)
	if err != nil {
		return nil, err
	}
	per := map[string]wompi.AccountLimits{}
	for _, a := range lim.Accounts {
		per[a.AccountID] = a
	}
	m := t.mask()
	res := &BalanceResult{Accounts: []AccountBalance{}}
	for _, a := range accs {
		ab := AccountBalance{Rail: string(rail.Wompi), AccountID: a.ID, Number: m.account(a.Number), Bank: a.Bank.Name, Status: a.Status, BalanceInCents: a.BalanceInCents}
		if l, ok := per[a.ID]; ok {
			ab.HasAccountLimits, ab.DailyLimit, ab.DailyConsumed, ab.DailyAvailable = true, l.DailyLimit, l.DailyConsumed, l.DailyAvailable
		}
		res.Accounts = append(res.Accounts, ab)
	}
	res.Limits = []RailLimits{{Rail: string(rail.Wompi), Day: lim.Date, DailyLimit: lim.Limits.DailyLimit, DailyConsumed: lim.Limits.DailyConsumed,
		DailyAvailable: lim.Limits.DailyAvailable, TransactionsConsumed: lim.NumberOfTransactionsConsumed, BatchesConsumed: lim.NumberOfBatchesConsumed}}
	// The single-payout rails enabled in the environment: one balance each
	// (they publish no per-account balance and no daily limit).
	singles, err := t.st.Rails.Singles(20 * time.Second)
	if err != nil {
		return nil, err
	}
	for _, n := range rail.Names {
		switch c := singles[n].(type) {
		case *smartfastpay.Client:
			b, err := c.Balance(ctx)
			if err != nil {
				return nil, err
			}
			res.Accounts = append(res.Accounts, AccountBalance{Rail: string(n), AccountID: "-", Number: "-", Status: b.Currency,
				BalanceInCents: b.AmountInCents})
		case *wepayout.Client:
			if t.st.Rails.WEpayout.MerchantID == "" {
				// Its balance is read per merchant: without one there is
				// nothing to ask.
				res.Accounts = append(res.Accounts, AccountBalance{Rail: string(n), AccountID: "-", Number: "-",
					Status: "set " + railconfig.EnvWEpayoutMerchantID + " to read it"})
				continue
			}
			b, err := c.Balance(ctx)
			if err != nil {
				return nil, err
			}
			res.Accounts = append(res.Accounts, AccountBalance{Rail: string(n), AccountID: "-", Number: "-", Status: "BRL",
				BalanceInCents: int64(b.AvailableBalance)})
		}
	}
	return res, nil
}

// Tables renders the balances.
func (r *BalanceResult) Tables() []Table {
	acc := Table{Title: "Origin accounts", Columns: []string{"RAIL", "ACCOUNT", "NUMBER", "BANK", "STATUS", "BALANCE", "DAY LIMIT", "DAY USED", "DAY LEFT"}}
	for _, a := range r.Accounts {
		l, c, av := "-", "-", "-"
		if a.HasAccountLimits {
			l, c, av = cents(a.DailyLimit), cents(a.DailyConsumed), cents(a.DailyAvailable)
		}
		acc.Rows = append(acc.Rows, []string{a.Rail, a.AccountID, a.Number, orDash(a.Bank), a.Status, cents(a.BalanceInCents), l, c, av})
	}
	lt := Table{Title: "Client limits (today)", Columns: []string{"RAIL", "DAY", "DAILY LIMIT", "USED", "LEFT", "TRANSACTIONS", "BATCHES"}}
	for _, l := range r.Limits {
		lt.Rows = append(lt.Rows, []string{l.Rail, orDash(l.Day), cents(l.DailyLimit), cents(l.DailyConsumed), cents(l.DailyAvailable),
			strconv.FormatInt(l.TransactionsConsumed, 10), strconv.FormatInt(l.BatchesConsumed, 10)})
	}
	return []Table{acc, lt}
}
