// Package ratelimit holds the dispatcher's shared limits in Redis, so they
// hold across every dispatcher replica:
//
//   - [Limiter] is the distributed rate limit on calls to Wompi's API, a GCRA
//     limiter (github.com/go-redis/redis_rate) on one Redis key.
//   - [Budget] reserves, for one batch, its amount against the origin
//     account's daily money limit on its amount day (a scheduled batch's
//     dispersion day) and one slot of the client's daily batch count on its
//     slot day (the day it is posted), in Bogota calendar days, with one
//     atomic Lua call that is idempotent per batch id, can be released, and
//     can be moved to a later slot day.
//
// Redis is a fast coordination layer here, not the source of truth: Wompi
// enforces its own limits and stays authoritative. After Redis loses its data
// (FLUSHALL, a restart without persistence) a day's budget for an account is
// unknown; [Budget.Reserve] then fails with [ErrNotSeeded] until the caller
// rebuilds the counters it names with [Budget.SeedAmount] and
// [Budget.SeedBatches] from Wompi's figures. Losing Redis therefore costs a
// GET, never an overspend that Redis alone allowed.
//
// Every script touches keys of a single hash slot ({budget} for every day),
// so the same code runs on Redis Cluster. Nothing here logs; errors carry
// batch and account ids (Wompi uuids, not personal data) and never
// beneficiary data.
package ratelimit
