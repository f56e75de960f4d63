package cpustat_test

import (
	"context"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/cpustat"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

func TestParseInfoCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.000000\r\n"
	got, err := cpustat.ParseInfoCPU(info)
	if err != nil || got != 3750*time.Millisecond {
		t.Fatalf("ParseInfoCPU = %v, %v; want 3.75s", got, err)
	}
	for name, bad := range map[string]string{
		"no user":    "used_cpu_sys:1.0\r\n",
		"bad number": "used_cpu_sys:1.0\r\nused_cpu_user:x\r\n",
		"empty":      "",
	} {
		if _, err := cpustat.ParseInfoCPU(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReadingsGrow(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	r0, err := cpustat.Redis(ctx, rs.Client())
	if err != nil {
		t.Fatal(err)
	}
	s0 := cpustat.Self()
	for i := 0; i < 5000; i++ {
		if err := rs.Client().Set(ctx, rs.Key("k"), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r1, err := cpustat.Redis(ctx, rs.Client())
	if err != nil {
		t.Fatal(err)
	}
	if r1 <= r0 {
		t.Errorf("redis CPU did not grow over 5,000 SETs: %v then %v", r0, r1)
	}
	if s1 := cpustat.Self(); s1 <= s0 {
		t.Errorf("own CPU did not grow: %v then %v", s0, s1)
	}
}
