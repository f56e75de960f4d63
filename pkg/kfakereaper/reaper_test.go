package kfakereaper

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	topic      = "t"
	group      = "g"
	partitions = 6
	session    = 6 * time.Second // kfake's minimum
)

// TestReaperRemovesMemberKilledMidJoin reproduces the ghost that stalled
// the chaos suite: a new member whose process dies while its JoinGroup
// waits for the rebalance. kfake then picks at random between delivering
// the reply into the dead connection's buffer, which arms the session timer,
// and noticing the connection is gone, which leaves the member in the group
// for good. So the test kills members mid-join, one at a time, until one is
// not timed out by kfake itself, and requires the Reaper to remove that one
// and give its partitions back to the live member.
func TestReaperRemovesMemberKilledMidJoin(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := Start(c, Options{Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	live := startMember(t, c)
	defer live.Close()
	if _, err := c.WaitGroupStable(ctx, group, 1); err != nil {
		t.Fatal(err)
	}

	const attempts = 12 // each dead member is kfake's ghost with probability 1/2
	for attempt := 1; attempt <= attempts; attempt++ {
		before := c.GroupInfo(group).Epoch
		id, err := joinAndDie(c.ListenAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		// The rebalance the join began ends in a new generation: with the
		// dead member, or without it when its session ran out before the
		// live member rejoined (a slow box): kfake timed it out itself.
		info, err := c.WaitGroupInfo(ctx, group, func(i *kfake.GroupInfo) bool {
			return i.State == stableState && i.Epoch > before && i.NumAssigned() == partitions
		})
		if err != nil {
			t.Fatalf("attempt %d: the group never turned stable again after the dead member's join: %v", attempt, err)
		}
		if len(info.Members) == 1 && r.Reaped() == 0 {
			t.Logf("attempt %d: kfake timed the dead member out before the group turned stable; killing another", attempt)
			continue
		}
		if len(info.Members) != 2 {
			t.Fatalf("attempt %d: the group turned stable with %d members: %+v", attempt, len(info.Members), info.Members)
		}
		if n := memberPartitions(info, id); n == 0 {
			t.Fatalf("attempt %d: the dead member %s holds no partitions: %+v", attempt, id, info.Members)
		}
		stable := time.Now()

		// Kafka removes it a session timeout after the join completed.
		for time.Since(stable) < 2*session+2*time.Second && !onlyLive(info) {
			time.Sleep(100 * time.Millisecond)
			info = c.GroupInfo(group)
		}
		if !onlyLive(info) {
			t.Fatalf("attempt %d: dead member %s still in the group %v after it turned stable: %+v",
				attempt, id, time.Since(stable).Round(time.Second), info.Members)
		}
		if r.Reaped() > 0 {
			t.Logf("attempt %d: kfake kept the dead member; the Reaper removed it %v after the group turned stable",
				attempt, time.Since(stable).Round(100*time.Millisecond))
			return
		}
		t.Logf("attempt %d: kfake timed the dead member out itself; killing another", attempt)
	}
	t.Fatalf("kfake timed out all %d members killed mid-join by itself: its session timer may be fixed, "+
		"and the Reaper retired (see the package comment)", attempts)
}

// onlyLive reports whether the live member alone holds every partition.
func onlyLive(info *kfake.GroupInfo) bool {
	return info.State == stableState && len(info.Members) == 1 && info.Members[0].NumAssigned() == partitions
}

// TestReaperSparesLiveMembers runs two heartbeating members past several
// session timeouts: the Reaper must remove neither.
func TestReaperSparesLiveMembers(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := Start(c, Options{Interval: 100 * time.Millisecond, Grace: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	a, b := startMember(t, c), startMember(t, c)
	defer a.Close()
	defer b.Close()
	before, err := c.WaitGroupStable(ctx, group, 2)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*session + time.Second)
	after := c.GroupInfo(group)
	if r.Reaped() != 0 || after.Epoch != before.Epoch || len(after.Members) != 2 {
		t.Fatalf("live members disturbed: reaped %d, generation %d -> %d, members %d",
			r.Reaped(), before.Epoch, after.Epoch, len(after.Members))
	}
}

func startMember(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.SessionTimeout(session),
		kgo.RebalanceTimeout(3*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if f := cl.PollFetches(context.Background()); f.IsClientClosed() {
				return
			}
		}
	}()
	return cl
}

// joinAndDie joins the group on a raw connection as a new member and closes
// the connection while its JoinGroup waits for the rebalance, as a process
// SIGKILLed mid-join does. It returns the member ID.
func joinAndDie(addr string) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("ghost"))

	join := func(memberID string, corr int32) error {
		meta := kmsg.NewConsumerMemberMetadata()
		meta.Topics = []string{topic}
		req := kmsg.NewPtrJoinGroupRequest()
		req.SetVersion(5)
		req.Group = group
		req.SessionTimeoutMillis = int32(session / time.Millisecond)
		req.RebalanceTimeoutMillis = 3000
		req.MemberID = memberID
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		p.Metadata = meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		_, err := conn.Write(f.AppendRequest(nil, req, corr))
		return err
	}

	if err := join("", 1); err != nil {
		return "", err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return "", err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return "", err
	}
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.SetVersion(5)
	if err := resp.ReadFrom(body[4:]); err != nil { // after the correlation ID
		return "", err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); !errors.Is(err, kerr.MemberIDRequired) || resp.MemberID == "" {
		return "", fmt.Errorf("first join: %v, member %q; want MEMBER_ID_REQUIRED with an ID", err, resp.MemberID)
	}
	// This join waits for the rebalance; the deferred Close kills us first.
	return resp.MemberID, join(resp.MemberID, 2)
}

func memberPartitions(info *kfake.GroupInfo, member string) int {
	if info == nil {
		return 0
	}
	for i := range info.Members {
		if info.Members[i].MemberID == member {
			return info.Members[i].NumAssigned()
		}
	}
	return 0
}
