package rail

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// BatchTracking is a batch rail as the tracker reads it: BatchPayouts, and
// the lookups the tracker makes of one batch or one item when a webhook
// names it (its batch id is unsigned on Wompi, and Redis may have lost the
// dispatcher's hand-off), when it polls a batch, and when it rebuilds its
// polling schedule after a Redis loss. Errors carry a Class as
// BatchPayouts' do.
type BatchTracking interface {
	BatchPayouts
	// GetBatch reads one batch by the provider's id. An id the provider
	// does not know gives an error that wraps ErrNotFound.
	GetBatch(ctx context.Context, providerID string) (Batch, error)
	// Item reads one item of one batch by the provider's ids, with our
	// requestId as Payout.ID. An item the provider does not know under
	// that batch (the pair does not exist, even if each id does) gives an
	// error that wraps ErrNotFound.
	Item(ctx context.Context, providerBatchID, providerItemID string) (Payout, error)
	// BatchesByStatus walks, every page, the batches whose status is one
	// of statuses (none: any status), created since a time when since is
	// not zero (as ListBatches: a rail may also yield earlier batches of
	// since's business day, never fewer). A status the provider refuses
	// as a filter value fails the walk with a *Error whose HTTPStatus is
	// the provider's 4xx.
	BatchesByStatus(ctx context.Context, since time.Time, statuses ...payout.BatchStatus) iter.Seq2[Batch, error]
}

// ErrNotFound is wrapped by the error of GetBatch and Item when the
// provider does not know the id (Wompi: a 404). The error is still a
// *Error with its Class.
var ErrNotFound = errors.New("rail: not found")

// WebhookRefusal says why VerifyWebhook refused a webhook, in words fit for
// a log: a few fixed values, never anything the webhook carried.
type WebhookRefusal string

// The refusals of VerifyWebhook.
const (
	// RefusedChecksum: the signature does not match (a forged or altered
	// webhook, a wrong secret, or no signature at all).
	RefusedChecksum WebhookRefusal = "checksum mismatch"
	// RefusedAmbiguous: the body repeats a key, or holds keys that differ
	// only in case, so it could be read two ways.
	RefusedAmbiguous WebhookRefusal = "duplicate or case-variant keys"
	// RefusedUnsigned: the signature does not cover the entity's id,
	// status and amount, or the event holds another entity than its name
	// says.
	RefusedUnsigned WebhookRefusal = "signature does not cover the event's id, status and amount"
	// RefusedTooLarge: the signature is over too many or too large values.
	RefusedTooLarge WebhookRefusal = "signature over too many or too large values"
	// RefusedMalformed: the webhook has no verifiable signature (it lacks
	// its signature, timestamp or data, or is not one JSON object).
	RefusedMalformed WebhookRefusal = "no verifiable signature"
)

// WebhookError is every refusal of VerifyWebhook: it wraps both
// ErrUnverifiedWebhook and the rail's own error, and says why.
type WebhookError struct {
	Rail    Name
	Refusal WebhookRefusal
	Err     error // the rail's own refusal
}

func (e *WebhookError) Error() string {
	s := string(e.Rail) + ": " + ErrUnverifiedWebhook.Error() + ": " + string(e.Refusal)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrUnverifiedWebhook and the rail's own error.
func (e *WebhookError) Unwrap() []error { return []error{ErrUnverifiedWebhook, e.Err} }

// RefusalOf returns why VerifyWebhook refused a webhook: the Refusal of the
// first *WebhookError in err's chain; RefusedChecksum for any other error
// wrapping ErrUnverifiedWebhook; "" for an error that is no refusal.
func RefusalOf(err error) WebhookRefusal {
	var we *WebhookError
	if errors.As(err, &we) && we.Refusal != "" {
		return we.Refusal
	}
	if errors.Is(err, ErrUnverifiedWebhook) {
		return RefusedChecksum
	}
	return ""
}
