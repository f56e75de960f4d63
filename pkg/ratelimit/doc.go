// Package ratelimit holds the dispatcher's shared limits in Redis, so they
// hold across every dispatcher replica:
//
//   - [Limiter] is the distributed rate limit on calls to Wompi's API, a GCRA
//     limiter (github.com/go-redis/redis_rate) on one Redis key.
//   - [Budget] reserves, for one batch, its amount against the origin
//     account's daily money limit and one slot of the client's daily batch
//     count, in Bogota calendar days, with one atomic Lua call that is
//     idempotent per batch id and can be released.
//
// Redis is a fast coordination layer here, not the source of truth: Wompi
// enforces its own limits and stays authoritative. After Redis loses its data
// (FLUSHALL, a restart without persistence) a day's budget for an account is
// unknown; [Budget.Reserve] then fails with [ErrNotSeeded] until the caller
// rebuilds the counters with [Budget.Seed] from Wompi's GET /limits. Losing
// Redis therefore costs a GET, never an overspend that Redis alone allowed.
//
// Every script touches keys of a single hash slot, so the same code runs on
// Redis Cluster. Nothing here logs; errors carry batch and account ids (Wompi
// uuids, not personal data) and never beneficiary data.
package ratelimit
