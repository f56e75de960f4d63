// Package testenv is the test substrate of the pipeline: it hands tests the
// real components named in ARCHITECTURE.md ("Real components and how they
// start") behind two helpers, so the same test runs against a laptop, CI and a
// real cluster without change. It is imported only by tests.
//
// Kafka ([Kafka]) resolves, in order:
//  1. KAFKA_BROKERS (comma-separated seed brokers) when set;
//  2. with TEST_KAFKA=real or TEST_REQUIRE_REAL_KAFKA=1, a real Apache Kafka
//     (KRaft, one node on loopback) started from the jars that Maven copies
//     into <repo>/.cache/kafka-<version> (package apachekafka), shared by
//     the test binary. TEST_REQUIRE_REAL_KAFKA=1 turns a missing Java or
//     missing jars into a failure; it is what CI sets;
//  3. a Redpanda container (testcontainers-go, image [RedpandaImage]) with
//     TEST_KAFKA=redpanda, or TEST_KAFKA unset and a healthy Docker engine,
//     shared by the test binary;
//  4. an in-process franz-go kfake cluster on random loopback ports, one per
//     call, closed at test cleanup (TEST_KAFKA=kfake, or nothing else
//     chosen: a plain `go test ./...` needs nothing but Go).
//
// [WithKFake] pins a test to kfake (for [Cluster.Fake] fault injection).
// [RealKafka] gives a test a private cluster of one or three real nodes to
// kill and restart (skipped unless real Kafka is asked for).
//
// Redis ([Redis]) resolves, in order:
//  1. REDIS_URL when set;
//  2. a redis container (image [RedisImage]) when Docker is healthy;
//  3. a redis-server binary from PATH (or REDIS_SERVER_BIN) on a free loopback
//     port, without persistence.
//
// [RedisCluster] gives a three-master Redis Cluster (redis-server in cluster
// mode, joined by `redis-cli --cluster create`), shared by the test binary,
// on which a script touching keys of two slots fails with CROSSSLOT.
//
// The shared Redis server is started once per test binary; each test gets its
// own key prefix ([RedisServer.Prefix]) whose keys are deleted at cleanup.
// Tests that simulate losing Redis must own their server ([RedisOwn]).
// testenv never falls back to miniredis: with no real Redis a test is skipped,
// and with TEST_REQUIRE_REAL_REDIS=1 it fails instead.
//
// Shared servers and containers are torn down when the test binary exits: the
// redis-server child gets SIGKILL from the kernel when the binary dies
// (PR_SET_PDEATHSIG), and so do the Kafka JVMs, each the leader of its own
// process group; containers are reaped by Ryuk. A package that wants an
// orderly stop can call [Main] from TestMain.
package testenv
