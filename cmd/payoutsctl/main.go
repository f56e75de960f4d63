// Command payoutsctl answers an operator's day-2 questions about the
// pipeline: trace one request, list what is stuck, show the day's budget
// and the provider's balances, list the dead letters, reconcile a day with
// the providers' records. It only reads, except dlq replay, which
// republishes chosen dead letters after its safety checks. It is
// configured by the workers' own environment variables. See pkg/ctl and
// docs/operations.md.
package main

import (
	"os"

	"github.com/wompi-payouts/pipeline/pkg/ctl"
	"github.com/wompi-payouts/pipeline/pkg/ops"
)

func main() {
	ctx, stop := ops.SignalContext()
	code := ctl.Main(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
