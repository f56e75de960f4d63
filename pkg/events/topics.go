package events

import (
	"errors"
	"fmt"
)

// Topics are the Kafka topic names of the pipeline. The zero value is not
// usable; start from DefaultTopics or TopicsFromEnv.
type Topics struct {
	Requests        string // PayoutRequested, keyed by requestId
	Batches         string // PayoutBatch, keyed by batchId
	BatchesDeferred string // PayoutBatch the dispatcher deferred, keyed by batchId
	Status          string // PayoutStatusChanged, keyed by requestId
	BatchStatus     string // BatchStatusChanged, keyed by batchId
	RequestsDLQ     string // undecodable requests: original key and bytes, DLQ headers
	// DispatcherStarts gets one record from each dispatcher process before
	// its first claim: how a recovery tells a first start from a Redis loss.
	DispatcherStarts string
}

// The default topic names.
const (
	DefaultTopicRequests         = "payouts.requests.v1"
	DefaultTopicBatches          = "payouts.batches.v1"
	DefaultTopicBatchesDeferred  = "payouts.batches.deferred.v1"
	DefaultTopicStatus           = "payouts.status.v1"
	DefaultTopicBatchStatus      = "payouts.batch-status.v1"
	DefaultTopicRequestsDLQ      = "payouts.requests.dlq.v1"
	DefaultTopicDispatcherStarts = "payouts.dispatcher.starts.v1"
)

// DefaultTopics returns the default topic names.
func DefaultTopics() Topics {
	return Topics{
		Requests:         DefaultTopicRequests,
		Batches:          DefaultTopicBatches,
		BatchesDeferred:  DefaultTopicBatchesDeferred,
		Status:           DefaultTopicStatus,
		BatchStatus:      DefaultTopicBatchStatus,
		RequestsDLQ:      DefaultTopicRequestsDLQ,
		DispatcherStarts: DefaultTopicDispatcherStarts,
	}
}

// TopicBinding ties one topic to its environment variable, for a config
// package to bind env vars and flags. Field points into the Topics that
// Bindings was called on.
type TopicBinding struct {
	Env     string  // e.g. "TOPIC_REQUESTS"
	Default string  // e.g. "payouts.requests.v1"
	Field   *string // the field to set
}

// Bindings returns the env-var table of t, in a fixed order.
func (t *Topics) Bindings() []TopicBinding {
	return []TopicBinding{
		{"TOPIC_REQUESTS", DefaultTopicRequests, &t.Requests},
		{"TOPIC_BATCHES", DefaultTopicBatches, &t.Batches},
		{"TOPIC_BATCHES_DEFERRED", DefaultTopicBatchesDeferred, &t.BatchesDeferred},
		{"TOPIC_STATUS", DefaultTopicStatus, &t.Status},
		{"TOPIC_BATCH_STATUS", DefaultTopicBatchStatus, &t.BatchStatus},
		{"TOPIC_REQUESTS_DLQ", DefaultTopicRequestsDLQ, &t.RequestsDLQ},
		{"TOPIC_DISPATCHER_STARTS", DefaultTopicDispatcherStarts, &t.DispatcherStarts},
	}
}

// TopicsFromEnv returns the default topics overridden by the non-empty
// TOPIC_* variables that getenv (e.g. os.Getenv) returns, validated.
func TopicsFromEnv(getenv func(string) string) (Topics, error) {
	t := DefaultTopics()
	for _, b := range t.Bindings() {
		if v := getenv(b.Env); v != "" {
			*b.Field = v
		}
	}
	return t, t.Validate()
}

// Validate checks that every topic is a legal Kafka topic name and that no
// two roles share a topic (ingest reading its own batches would be a loop).
// An error names the environment variable to fix.
func (t Topics) Validate() error {
	seen := map[string]string{}
	var errs []error
	for _, b := range t.Bindings() {
		name := *b.Field
		if err := ValidateTopicName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Env, err))
			continue
		}
		if other, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%s: topic %q is also %s", b.Env, name, other))
			continue
		}
		seen[name] = b.Env
	}
	return errors.Join(errs...)
}

// ValidateTopicName checks a Kafka topic name: 1 to 249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case len(name) > 249:
		return fmt.Errorf("topic name is %d characters, more than 249", len(name))
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has a character outside [a-zA-Z0-9._-]", name)
		}
	}
	return nil
}
