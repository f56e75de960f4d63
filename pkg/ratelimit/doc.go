// Package ratelimit holds the dispatcher's shared limits in Redis, so they
// hold across every dispatcher replica:
//
//   - [Limiter] is a distributed rate limit on calls to a provider's API, a
//     GCRA limiter (github.com/go-redis/redis_rate) on one Redis key;
//     [RailLimiters] is one per rail, each on a key that names its rail
//     ([RailLimiterKey]), so one rail's calls never take another's tokens.
//   - [Budget] reserves, for one batch, its amount against the origin
//     account's daily money limit on its amount day (a scheduled batch's
//     dispersion day) and one slot of its rail's daily batch count on its
//     slot day (the day it is posted), with one atomic Lua call that is
//     idempotent per batch id, can be released, and can be moved to a later
//     slot day. Budgets are per rail ([Reservation].Rail, "" is Wompi): two
//     rails never share an amount or a count, each rail has its own batch
//     cap (Wompi's 3,800; none for a rail without one), and the days are the
//     rail's business days (Bogota for Wompi, Sao Paulo for WEpayout),
//     which the caller computes.
//
// Redis is a fast coordination layer here, not the source of truth: the
// providers enforce their own limits and stay authoritative. After Redis
// loses its data (FLUSHALL, a restart without persistence) a day's budget
// for an account is unknown; [Budget.Reserve] then fails with
// [ErrNotSeeded] until the caller rebuilds the counters it names, for the
// rail it names, with [Budget.SeedAmount] and [Budget.SeedBatches] from the
// rail's figures. Losing Redis therefore costs a GET, never an overspend
// that Redis alone allowed.
//
// Every script touches keys of a single hash slot ({budget} for every day),
// so the same code runs on Redis Cluster. Nothing here logs; errors carry
// batch and account ids (Wompi uuids, not personal data) and never
// beneficiary data.
package ratelimit
