package ctl

import (
	"github.com/wompi-payouts/pipeline/pkg/config"
)

// testConfig parses the settings from env (no flags).
func testConfig(env map[string]string) *Settings {
	set := config.New("payoutsctl", func(s string) (string, bool) { v, ok := env[s]; return v, ok })
	st := Bind(set)
	if err := set.Parse(nil); err != nil {
		panic(err)
	}
	return st
}
