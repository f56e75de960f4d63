package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The dispatcher reads the status topic's retention at start, to say when
// it is shorter than DEDUPE_WINDOW (a recovery would miss older REJECTED):
// a value set on the topic is read as set, and -1 as kept for good.
func TestRetentionOfATopicIsReadAsSet(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{kfake: true, partitions: 1})
	e := f.engine(nil)
	ctx := context.Background()
	for _, c := range []struct {
		value string
		want  time.Duration
	}{{"86400000", 24 * time.Hour}, {"-1", -1}} {
		resp, err := f.kafka.Admin(t).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr(c.value)}}, f.topics.Status)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := resp.On(f.topics.Status, nil); err != nil || r.Err != nil {
			t.Fatalf("alter %s: %v %v", f.topics.Status, err, r.Err)
		}
		got, ok := e.retention(ctx, f.topics.Status)
		if !ok || got != c.want {
			t.Errorf("retention.ms=%s read as %v (ok=%v), want %v", c.value, got, ok, c.want)
		}
		if short := got >= 0 && got < DefaultDedupeWindow; short != (c.value == "86400000") {
			t.Errorf("retention.ms=%s: shorter than DEDUPE_WINDOW %v, want %v", c.value, short, !short)
		}
	}
	if why := e.sizeBound(ctx, f.topics.Status); why != "" {
		t.Errorf("a topic with neither retention.bytes nor compaction read as bounded: %s", why)
	}
	for _, c := range []struct{ name, value, want string }{
		{"retention.bytes", "1073741824", "retention.bytes=1073741824"},
		{"cleanup.policy", "compact", "retention.bytes=1073741824, cleanup.policy=compact"},
	} {
		resp, err := f.kafka.Admin(t).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: c.name, Value: kadm.StringPtr(c.value)}}, f.topics.Status)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := resp.On(f.topics.Status, nil); err != nil || r.Err != nil {
			t.Fatalf("alter %s: %v %v", f.topics.Status, err, r.Err)
		}
		if why := e.sizeBound(ctx, f.topics.Status); why != c.want {
			t.Errorf("%s=%s: bound %q, want %q", c.name, c.value, why, c.want)
		}
	}
}
