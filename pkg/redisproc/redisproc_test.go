package redisproc_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wompi-payouts/pipeline/pkg/redisproc"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

var identify = redis.NewScript(redisproc.Lua + `return {server, repl, tostring(shifted)}`)

type process struct{ server, repl, shifted string }

func identity(t *testing.T, rdb *redis.Client) process {
	t.Helper()
	v, err := identify.Run(context.Background(), rdb, nil).StringSlice()
	if err != nil {
		t.Fatal(err)
	}
	return process{v[0], v[1], v[2]}
}

func infoField(t *testing.T, rdb *redis.Client, section, field string) string {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return ""
}

func TestNamesTheProcessAndItsReplication(t *testing.T) {
	rs := testenv.RedisOwn(t)
	got := identity(t, rs.Client())
	want := process{infoField(t, rs.Client(), "server", "run_id"), infoField(t, rs.Client(), "replication", "master_replid"), "false"}
	if got != want || got.server == "" || got.repl == "" {
		t.Fatalf("identity = %+v, want %+v", got, want)
	}
}

// A promotion sets the second replication id: shifted. A master whose
// first replica attaches takes a new replication id too, with nothing
// lost: not shifted.
func TestPromotionShiftsAndAFirstReplicaDoesNot(t *testing.T) {
	a, b := testenv.RedisOwn(t), testenv.RedisOwn(t)
	before := identity(t, a.Client())
	b.ReplicaOf(t, a)
	attached := identity(t, a.Client())
	if attached.server != before.server || attached.shifted != "false" {
		t.Fatalf("master after its first replica attached = %+v, before %+v: want the same run id, not shifted", attached, before)
	}
	b.Promote(t)
	promoted := identity(t, b.Client())
	if promoted.shifted != "true" || promoted.repl == attached.repl || promoted.repl == "" {
		t.Fatalf("promoted replica = %+v, master %+v: want a new replication id, shifted", promoted, attached)
	}
}
