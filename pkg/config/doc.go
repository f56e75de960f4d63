// Package config binds a worker's settings to environment variables and
// matching command-line flags, the way ARCHITECTURE.md's contract says:
// every setting has an env variable and a flag (the flag wins), secrets may
// also come from VAR_FILE, and a missing or invalid setting stops the worker
// at start with one line that names the variable.
//
//	cfg := config.New("dispatcher", os.LookupEnv)
//	cfg.String(&brokers, "kafka-brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "seed brokers").Required()
//	cfg.Secret(&apiKey, "wompi-api-key", "WOMPI_API_KEY", "Wompi API key")
//	if err := cfg.Parse(os.Args[1:]); err != nil { ... one line, exit 2 }
package config
