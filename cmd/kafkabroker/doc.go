// Command kafkabroker runs a real Apache Kafka (KRaft mode, every node a
// combined broker and controller, on 127.0.0.1) from the jars that Maven
// copies out of Maven Central, with the machine's Java 17+. Tests get the
// same broker through pkg/testenv (TEST_KAFKA=real); this command serves the
// multi-process runs (the chaos suite, payouts-local with KAFKA_BROKERS) and
// fetches the jars for CI.
//
//	kafkabroker [-nodes 1|3] [-heap 512m] [-dir DIR] [-v]
//	kafkabroker -fetch
//
// -fetch copies the jars into the cache (<repo>/.cache/kafka-<version>/lib,
// see pkg/testenv/apachekafka) with
//
//	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies
//
// and exits. Otherwise it formats fresh log dirs (in a temporary folder
// removed at exit, unless -dir), starts the nodes, waits until each answers
// a metadata request listing all of them, prints exactly one line to stdout,
//
//	brokers=127.0.0.1:41234,127.0.0.1:41236,127.0.0.1:41238
//
// and the startup time and each JVM's resident memory to stderr, then runs
// until SIGTERM or SIGINT and shuts the nodes down in order. With 3 nodes,
// topics are replicated three ways with min.insync.replicas=2. -v copies the
// brokers' WARN and ERROR lines to stderr. The JVMs die with kafkabroker even
// when it is killed (PR_SET_PDEATHSIG).
package main
