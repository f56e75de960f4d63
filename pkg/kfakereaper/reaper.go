// Package kfakereaper gives kfake the session timeout that real Kafka has
// for consumer-group members whose process died in the middle of a join.
//
// kfake (at the version pinned in go.mod) arms a classic member's session
// timer only when a JoinGroup or SyncGroup reply is handed to the member's
// connection (group.reply in kfake's groups.go). For a member whose process
// died while its JoinGroup waited for the rebalance, that hand-off selects
// at random between the dead connection's buffered response channel and its
// closed done channel (clientReq.reply), so about half the time the timer is
// never armed. A new member has no older timer running (stopPending stopped
// it), and the pending-sync deadline that would otherwise remove it is
// cleared as soon as the leader syncs. The group then turns Stable with the
// dead member holding partitions, and nothing removes it: its partitions are
// consumed by nobody until some live member forces a new rebalance. Real
// Kafka arms the session timer when the join completes, delivered or not,
// and removes the member after session.timeout.ms.
//
// The chaos suite SIGKILLs workers at random moments, so it meets these
// "ghost" members (issue #8). A Reaper watches JoinGroup, SyncGroup and
// Heartbeat requests through kfake control functions and, for a Stable
// group, removes a member not heard from for its session timeout (plus a
// grace) with a LeaveGroup sent on the member's behalf, as Kafka's own
// timeout would. A live member loses nothing it would not lose to Kafka's
// timeout: its next heartbeat gets UNKNOWN_MEMBER_ID and it rejoins; a
// transactional commit of its old generation is fenced.
package kfakereaper

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// stableState is kfake's name for a classic group's Stable state
// (GroupInfo.State).
const stableState = "Stable"

// Options tune a Reaper. The zero value is ready to use.
type Options struct {
	// Interval is how often groups are checked; default 500ms.
	Interval time.Duration
	// Grace is added to a member's session timeout before it is removed;
	// default 1s. kfake's own timer removes a member it did arm at the
	// session timeout, so the grace keeps the Reaper out of its way.
	Grace time.Duration
	// Logger receives one WARN line per removed member; default discards.
	Logger *slog.Logger
}

// Reaper removes consumer-group members that kfake keeps past their session
// timeout. Create one with Start and stop it with Close.
type Reaper struct {
	c    *kfake.Cluster
	cl   *kgo.Client
	opts Options

	mu      sync.Mutex
	members map[memberKey]*memberSeen
	groups  map[string]*groupSeen

	reaped atomic.Int64
	cancel context.CancelFunc
	done   chan struct{}
}

type memberKey struct{ group, member string }

type memberSeen struct {
	last    time.Time     // last JoinGroup, SyncGroup or Heartbeat
	session time.Duration // from the member's last JoinGroup
}

type groupSeen struct {
	// settled is when the group was last seen outside Stable. Kafka arms
	// every member's session timer when a rebalance completes, so a member
	// is idle since the later of its last request and this.
	settled time.Time
}

// Start begins watching c. The Reaper sends its LeaveGroup requests through
// its own client on c's listeners.
func Start(c *kfake.Cluster, opts Options) (*Reaper, error) {
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ClientID("kfakereaper"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reaper{
		c: c, cl: cl, opts: opts,
		members: make(map[memberKey]*memberSeen),
		groups:  make(map[string]*groupSeen),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	for _, key := range []kmsg.Key{kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.LeaveGroup} {
		c.ControlKey(int16(key), r.observe)
	}
	go r.loop(ctx)
	return r, nil
}

// Reaped reports how many members the Reaper has removed.
func (r *Reaper) Reaped() int64 { return r.reaped.Load() }

// Close stops the Reaper. It does not close the cluster.
func (r *Reaper) Close() {
	r.cancel()
	<-r.done
	r.cl.Close()
}

// observe records a group request and lets kfake handle it as usual.
func (r *Reaper) observe(req kmsg.Request) (kmsg.Response, error, bool) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch req := req.(type) {
	case *kmsg.JoinGroupRequest:
		if req.MemberID != "" {
			r.touch(req.Group, req.MemberID, now).session = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
		}
	case *kmsg.SyncGroupRequest:
		r.touch(req.Group, req.MemberID, now)
	case *kmsg.HeartbeatRequest:
		r.touch(req.Group, req.MemberID, now)
	case *kmsg.LeaveGroupRequest:
		delete(r.members, memberKey{req.Group, req.MemberID})
		for _, m := range req.Members {
			delete(r.members, memberKey{req.Group, m.MemberID})
		}
	}
	return nil, nil, false
}

// touch marks a member as heard from at now; r.mu must be held.
func (r *Reaper) touch(group, member string, now time.Time) *memberSeen {
	if _, ok := r.groups[group]; !ok {
		r.groups[group] = &groupSeen{settled: now}
	}
	k := memberKey{group, member}
	m := r.members[k]
	if m == nil {
		m = &memberSeen{}
		r.members[k] = m
	}
	m.last = now
	return m
}

func (r *Reaper) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sweep(ctx)
		}
	}
}

// sweep removes the idle members of every Stable group it knows.
func (r *Reaper) sweep(ctx context.Context) {
	r.mu.Lock()
	groups := make([]string, 0, len(r.groups))
	for g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()

	for _, group := range groups {
		info := r.c.GroupInfo(group) // runs on the cluster loop; never call it from observe
		now := time.Now()
		var idle []string
		r.mu.Lock()
		gs := r.groups[group]
		switch {
		case info == nil:
			delete(r.groups, group)
		case info.State != stableState:
			gs.settled = now
		default:
			present := make(map[string]bool, len(info.Members))
			for _, m := range info.Members {
				present[m.MemberID] = true
				seen := r.members[memberKey{group, m.MemberID}]
				if seen == nil {
					// Joined before we watched, or through a path we do
					// not see: start its clock now.
					seen = &memberSeen{last: now}
					r.members[memberKey{group, m.MemberID}] = seen
				}
				since := seen.last
				if gs.settled.After(since) {
					since = gs.settled
				}
				if seen.session > 0 && now.Sub(since) > seen.session+r.opts.Grace {
					idle = append(idle, m.MemberID)
				}
			}
			for k := range r.members {
				if k.group == group && !present[k.member] {
					delete(r.members, k)
				}
			}
		}
		r.mu.Unlock()
		for _, member := range idle {
			r.remove(ctx, group, member)
		}
	}
}

// remove sends the LeaveGroup that Kafka's session timeout amounts to.
func (r *Reaper) remove(ctx context.Context, group, member string) {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = member
	lm.Reason = kmsg.StringPtr("kfakereaper: session timeout")
	req.Members = append(req.Members, lm)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, r.cl)
	if err != nil {
		r.opts.Logger.Warn("kfakereaper: leave group failed", "group", group, "member", member, "err", err)
		return
	}
	for _, m := range resp.Members {
		if m.ErrorCode != 0 {
			// Most likely UNKNOWN_MEMBER_ID: it left or was timed out
			// between our snapshot and now.
			return
		}
	}
	if resp.ErrorCode != 0 {
		return
	}
	r.reaped.Add(1)
	r.opts.Logger.Warn("kfakereaper: removed a group member kfake kept past its session timeout",
		"group", group, "member", member)
}
