// Command wompisim is the thin main that serves the Wompi payouts simulator
// (pkg/wompi/wompitest) for the local stack and docker-compose. See
// docs/simulator.md.
package main
