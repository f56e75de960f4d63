package testenv

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Apache Kafka can answer CreateTopics before the new topic shows in its
// metadata, so CreateTopic's first readiness poll can miss it. franz-go
// cached that miss for MetadataMinAge (5 s) and answered the next polls
// from the cache: about one Topic call in ten took 5 s (13df524). Every
// poll must reach the broker.
//
// kfake creates a topic within CreateTopics, so it never shows the miss by
// itself: the test answers CreateTopics itself, lets the first poll see
// the topic missing, creates the topic, and checks after every poll that
// the broker saw one metadata request for the topic per poll so far. The
// pause is at least 20 ms, longer than the client's 10 ms minimum age, so
// nothing here depends on how fast the box is.
func TestCreateTopicPollsTheBrokerNotACachedMiss(t *testing.T) {
	c := Kafka(t, WithKFake())
	fc := c.Fake()
	const name, partitions = "late.topic", 3

	// One CreateTopics (the one under test) is answered as done without
	// creating anything; the control is then dropped.
	fc.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		creq := req.(*kmsg.CreateTopicsRequest)
		resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.NumPartitions, st.ReplicationFactor = rt.Topic, rt.NumPartitions, 1
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var brokerPolls atomic.Int64 // metadata requests for the topic that reached the broker
	fc.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, rt := range req.(*kmsg.MetadataRequest).Topics {
			if rt.Topic != nil && *rt.Topic == name {
				brokerPolls.Add(1)
			}
		}
		return nil, nil, false // observe only
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var polls int64
	pause := func(ctx context.Context) error {
		polls++
		if got := brokerPolls.Load(); got < polls {
			return fmt.Errorf("poll %d was answered from the client's cache: the broker saw %d metadata requests for the topic", polls, got)
		}
		if polls == 1 {
			// The broker has now answered a miss; the topic appears.
			resp, err := kadm.NewClient(c.Client(t)).CreateTopic(ctx, partitions, -1, nil, name)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				return fmt.Errorf("creating the topic behind CreateTopic's back: %w", err)
			}
		}
		return pauseBetweenTopicPolls(ctx)
	}
	if err := c.createTopic(ctx, name, partitions, pause); err != nil {
		t.Fatal(err)
	}
	if polls == 0 {
		t.Fatal("the first poll found the topic: the test never made CreateTopic see a miss")
	}
	if got := brokerPolls.Load(); got != polls+1 {
		t.Errorf("the broker saw %d metadata requests for the topic, want %d (one per poll)", got, polls+1)
	}
}
