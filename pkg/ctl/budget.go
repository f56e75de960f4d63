package ctl

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/ratelimit"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
)

// BudgetResult is one day's use of the daily limits, per rail.
type BudgetResult struct {
	Day   string       `json:"day"`
	Rails []RailBudget `json:"rails"`
	Notes []string     `json:"notes,omitempty"`
}

// RailBudget is a rail's batch count (client-wide) and its accounts' amounts.
type RailBudget struct {
	Rail          string          `json:"rail"`
	TimeZone      string          `json:"timeZone"`
	BatchesSeeded bool            `json:"batchesSeeded"`
	BatchesUsed   int             `json:"batchesUsed"`
	BatchCap      int             `json:"batchCap"`
	BatchesLeft   int             `json:"batchesLeft"`
	Accounts      []AccountBudget `json:"accounts"`
}

// AccountBudget is one origin account's amount on the day.
type AccountBudget struct {
	OriginAccountID string `json:"originAccountId"`
	Seeded          bool   `json:"seeded"`
	UsedInCents     int64  `json:"usedInCents"`
	LimitInCents    int64  `json:"limitInCents"`
	LeftInCents     int64  `json:"leftInCents"`
	// LimitSource says where the limit comes from: DAILY_LIMIT_CENTS, or
	// the provider's per-account limit when lower (as the dispatcher does).
	LimitSource string `json:"limitSource"`
}

// Budget reads the day's reservations through pkg/ratelimit (Budget.Usage:
// the same API the dispatcher uses, so a change of its key layout is
// followed). The accounts are those given, else the provider's origin
// accounts (GET /accounts). The limit of an account is the lower of
// DAILY_LIMIT_CENTS and the provider's per-account limit, as the
// dispatcher enforces; the batch cap is DAILY_BATCH_CAP. A day not seeded
// yet (no batch of the day reached the dispatcher, or Redis lost it) shows
// as such: its figures are then zero until the dispatcher seeds it from the
// provider.
func (t *Tool) Budget(ctx context.Context, day string, accounts []string) (*BudgetResult, error) {
	if day == "" {
		day = payout.DayIn(t.now(), rail.Location(rail.Wompi)).String()
	}
	rdb, err := t.redis(ctx)
	if err != nil {
		return nil, err
	}
	res := &BudgetResult{Day: day}
	wc, werr := t.wompi()
	provLimit := map[string]int64{}
	if werr == nil {
		if len(accounts) == 0 {
			accs, err := wc.Accounts(ctx, wompi.AccountsFilter{})
			if err != nil {
				return nil, fmt.Errorf("wompi: GET /accounts (give --account to skip it): %w", err)
			}
			for _, a := range accs {
				accounts = append(accounts, a.ID)
			}
		}
		d, _ := payout.ParseDay(day)
		if lim, err := wc.LimitsOn(ctx, d.StartIn(rail.Location(rail.Wompi))); err != nil {
			res.Notes = append(res.Notes, "wompi: GET /limits failed, limits are DAILY_LIMIT_CENTS: "+err.Error())
		} else {
			for _, a := range lim.Accounts {
				provLimit[a.AccountID] = a.DailyLimit
			}
		}
	} else if len(accounts) == 0 {
		return nil, fmt.Errorf("budget: give --account, or set the wompi credentials to list the origin accounts: %w", werr)
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	b, err := ratelimit.NewBudget(rdb, ratelimit.BudgetConfig{Prefix: t.st.RedisPrefix, DailyBatchCap: t.st.DailyBatchCap})
	if err != nil {
		return nil, err
	}
	rb := RailBudget{Rail: string(rail.Wompi), TimeZone: rail.Location(rail.Wompi).String(), BatchCap: t.st.DailyBatchCap, Accounts: []AccountBudget{}}
	for i, acct := range accounts {
		u, err := b.Usage(ctx, rail.Wompi, day, acct)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			rb.BatchesSeeded, rb.BatchesUsed = u.BatchesSeeded, u.Batches
		}
		limit, src := t.st.DailyLimitCents, "DAILY_LIMIT_CENTS"
		if v, ok := provLimit[acct]; ok && v > 0 && v < limit {
			limit, src = v, "wompi GET /limits"
		}
		rb.Accounts = append(rb.Accounts, AccountBudget{OriginAccountID: acct, Seeded: u.Seeded, UsedInCents: u.AmountInCents,
			LimitInCents: limit, LeftInCents: max(limit-u.AmountInCents, 0), LimitSource: src})
	}
	rb.BatchesLeft = max(rb.BatchCap-rb.BatchesUsed, 0)
	res.Rails = append(res.Rails, rb)
	return res, nil
}

// Tables renders the budget.
func (r *BudgetResult) Tables() []Table {
	tb := Table{Title: "Budget of " + r.Day, Columns: []string{"RAIL", "ACCOUNT", "SEEDED", "USED", "LIMIT", "LEFT", "LIMIT FROM"}, Notes: r.Notes}
	for _, rb := range r.Rails {
		for _, a := range rb.Accounts {
			tb.Rows = append(tb.Rows, []string{rb.Rail, a.OriginAccountID, yesNo(a.Seeded), cents(a.UsedInCents), cents(a.LimitInCents),
				cents(a.LeftInCents), a.LimitSource})
		}
		tb.Rows = append(tb.Rows, []string{rb.Rail, "(batches, all accounts)", yesNo(rb.BatchesSeeded), strconv.Itoa(rb.BatchesUsed),
			strconv.Itoa(rb.BatchCap), strconv.Itoa(rb.BatchesLeft), "DAILY_BATCH_CAP"})
	}
	return []Table{tb}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
