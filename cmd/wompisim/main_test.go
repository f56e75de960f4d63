package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// WOMPISIM_ACCOUNT_DAILY_LIMIT and WOMPISIM_ACCOUNT_BALANCE give every
// origin account one daily limit and one balance, so that a load run can
// use the standalone simulator; unset, each account keeps its own.
func TestAccountLimitAndBalanceSettings(t *testing.T) {
	defaults := wompitest.DefaultAccounts()
	const big = 1_000_000_000_000_000
	cases := []struct {
		name         string
		args         []string
		env          map[string]string
		limit, funds int64 // 0: each account's default
	}{
		{"unset: each account's own", nil, nil, 0, 0},
		{"empty: each account's own", nil, map[string]string{"WOMPISIM_ACCOUNT_DAILY_LIMIT": "", "WOMPISIM_ACCOUNT_BALANCE": ""}, 0, 0},
		{"both from env", nil, map[string]string{"WOMPISIM_ACCOUNT_DAILY_LIMIT": "1000000000000000", "WOMPISIM_ACCOUNT_BALANCE": "1000000000000000"}, big, big},
		{"limit only", nil, map[string]string{"WOMPISIM_ACCOUNT_DAILY_LIMIT": "7"}, 7, 0},
		{"balance only, by flag", []string{"-account-balance", "9"}, nil, 0, 9},
		{"a flag wins", []string{"-account-daily-limit=5"}, map[string]string{"WOMPISIM_ACCOUNT_DAILY_LIMIT": "7"}, 5, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parse(tc.args, env(tc.env), io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := wompitest.New(st.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			// What the simulator serves: GET /limits and GET /accounts.
			c, err := wompi.New(wompi.Config{BaseURL: srv.BaseURL(), APIKey: st.cfg.APIKey, PrincipalID: st.cfg.PrincipalID})
			if err != nil {
				t.Fatal(err)
			}
			lim, err := c.Limits(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			accs, err := c.Accounts(context.Background(), wompi.AccountsFilter{})
			if err != nil {
				t.Fatal(err)
			}
			limits, balances := map[string]int64{}, map[string]int64{}
			for _, a := range lim.Accounts {
				limits[a.AccountID] = a.DailyLimit
			}
			for _, a := range accs {
				balances[a.ID] = a.BalanceInCents
			}
			if len(limits) != len(defaults) || len(balances) != len(defaults) {
				t.Fatalf("served %d limits and %d accounts, want %d", len(limits), len(balances), len(defaults))
			}
			for _, d := range defaults {
				wantLimit, wantFunds := d.DailyLimitInCents, d.BalanceInCents
				if tc.limit != 0 {
					wantLimit = tc.limit
				}
				if tc.funds != 0 {
					wantFunds = tc.funds
				}
				if limits[d.ID] != wantLimit || balances[d.ID] != wantFunds {
					t.Errorf("account %s: limit %d, balance %d; want %d, %d", d.ID, limits[d.ID], balances[d.ID], wantLimit, wantFunds)
				}
			}
		})
	}
}

func TestAccountSettingsRefuseBadValues(t *testing.T) {
	for _, v := range []string{"abc", "0", "-3", "1.5"} {
		for _, name := range []string{"WOMPISIM_ACCOUNT_DAILY_LIMIT", "WOMPISIM_ACCOUNT_BALANCE"} {
			_, err := parse(nil, env(map[string]string{name: v}), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "invalid "+name) {
				t.Errorf("%s=%q: err = %v, want one naming the variable", name, v, err)
			}
		}
	}
}
