// Package redisproc names the Redis process a Lua script runs on, so that
// state stamped by one process is not trusted on another that may have
// lost part of it.
//
// A Redis restarted, from whatever persistence, or failed over to a
// replica is another process with another run id; either may have lost the
// last writes (an fsync once a second, an RDB snapshot, asynchronous
// replication) while keeping the keys that were stamped. A failback keeps
// the run id: a master cut off from its replicas takes writes for a moment,
// a replica is promoted without them, and once the partition heals the old
// master syncs from it (those writes are discarded) and is made master
// again (CLUSTER FAILOVER, SENTINEL FAILOVER back). Its promotion back gave
// it a new replication id with the second one set (second_repl_offset). A
// master also takes a new replication id without a promotion, when its
// first replica attaches while it has no backlog or when its backlog is
// freed after repl-backlog-ttl without replicas; Redis then clears the
// second id, and nothing was lost.
package redisproc

// Lua opens a script with three locals: server, the run id of the Redis
// process running it (INFO server's run_id), "" where INFO has none
// (miniredis, the local run's last fallback, which never restarts or fails
// over) or is refused (an ACL without +info); repl, its replication id
// (INFO replication's master_replid), "" when unreadable or when server is
// ""; and shifted, true when its second_repl_offset is set: its
// replication id was last changed by a promotion, so writes may have been
// lost since a stamp that names another replication id.
//
// It costs two INFO calls, about 7 µs of Redis CPU each, so the callers
// run it once per guarded step, never per request.
const Lua = `local server, repl, shifted = '', '', false
do
  local info = redis.pcall('INFO', 'server')
  if type(info) == 'string' then server = string.match(info, 'run_id:(%x+)') or '' end
  if server ~= '' then
    local r = redis.pcall('INFO', 'replication')
    if type(r) == 'string' then
      repl = string.match(r, 'master_replid:(%x+)') or ''
      shifted = (string.match(r, 'second_repl_offset:(%-?%d+)') or '-1') ~= '-1'
    end
  end
end
`
