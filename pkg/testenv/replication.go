package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReplicaOf makes rs a replica of master (REPLICAOF) and waits until it
// has synced. Both must be servers of their own (RedisOwn): the replica's
// data is replaced by the master's.
func (rs *RedisServer) ReplicaOf(t testing.TB, master *RedisServer) {
	t.Helper()
	rs.ReplicaOfNode(t, master.Client())
}

// ReplicaOfNode is ReplicaOf with any master a client talks to, such as a
// master of the Redis Cluster (RedisCluster; a replica that is not a
// cluster node: it counts as the master's replica all the same). Stop
// the replication before the test ends (Promote) on a shared server.
func (rs *RedisServer) ReplicaOfNode(t testing.TB, master *redis.Client) {
	t.Helper()
	ctx := context.Background()
	if err := master.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(master.Options().Addr, ":")
	if err := rs.client.SlaveOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := rs.client.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: replica of %s not in sync: %v %s", master.Options().Addr, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Promote makes rs a master again (REPLICAOF NO ONE): a failover to it, or
// a failback.
func (rs *RedisServer) Promote(t testing.TB) {
	t.Helper()
	if err := rs.client.SlaveOf(context.Background(), "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
}
