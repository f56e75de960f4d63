// Command wepayoutsim is the thin main that serves the WEpayout payouts
// simulator (pkg/wepayout/weptest) for the local stack and docker-compose.
// See docs/rails/wepayout.md.
package main
