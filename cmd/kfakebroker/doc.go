// Command kfakebroker runs franz-go's kfake, an in-process Kafka-protocol
// cluster, as a standalone process. Multi-process tests and the local
// sandbox point KAFKA_BROKERS at it. It is a fake: nothing is persisted and
// it lacks features of a real broker (see kfake's skipped_features); never
// use it in production.
//
// Configuration is flags, each with an environment variable:
//
//	-ports      KFAKE_PORTS       comma-separated listen ports on 127.0.0.1, one
//	                              broker each; 0 picks a random port (default "0")
//	-partitions KFAKE_PARTITIONS  partitions of seeded and auto-created topics (default 6)
//	-topics     KFAKE_TOPICS      comma-separated topics to create at start
//	-session-reaper KFAKE_SESSION_REAPER
//	                              time out group members kfake keeps after their
//	                              process died mid-join, as Kafka would (default true;
//	                              see pkg/kfakereaper)
//
// A flag set on the command line wins over its variable. Topics are also
// auto-created on first use. Once listening, kfakebroker prints exactly one
// line to stdout,
//
//	brokers=127.0.0.1:41234,127.0.0.1:41235
//
// and runs until SIGTERM or SIGINT. A bad value stops it at start with one
// line on stderr naming the variable (or flag) and exit status 2.
package main
