package rail

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// BatchRequest is one batch for a batch rail: many payees, one POST, one
// idempotency key. Reference is our batch id (the PayoutBatch's batchId):
// the provider keeps it, and FindBatches looks batches up by it.
type BatchRequest struct {
	Reference       string
	OriginAccountID string // the provider's id of the account that pays
	PaymentType     string // PAYROLL, PROVIDERS, OTHER
	// DispersionAt schedules the batch; zero means now. A rail may refuse a
	// time that is not on a later business day (Rejected).
	DispersionAt time.Time
	// Recurring repeats a scheduled batch; nil for none.
	Recurring *Recurring
	Items     []BatchItem
}

// Recurring repeats a scheduled batch.
type Recurring struct {
	Interval    string // biweek or month, as the contract spells it (any case)
	Months      int    // 3, 6 or 12
	Description string
}

// BatchItem is one payee of a batch. ID is our requestId: the provider
// keeps it as the item's reference, and Items returns it as Payout.ID.
type BatchItem struct {
	ID            string
	AmountInCents int64
	Payee         Payee
	// ProviderBankID is the provider's own id of the payee's bank (Wompi's
	// bankId), when the request carries one. It wins over Payee.BankCode,
	// which the rail resolves otherwise.
	ProviderBankID string
}

// Batch is a provider's record of a batch, mapped. Its items are read with
// Items.
type Batch struct {
	ProviderID string // the provider's id (Wompi's payoutId)
	Reference  string // our batch id, as the provider holds it
	// Status is the batch status of the contract (BatchStatusChanged);
	// "" while the provider's status maps to nothing known, and in
	// CreateBatch's answer when the provider does not say.
	Status         payout.BatchStatus
	ProviderStatus string // as the provider says it
	AmountInCents  int64
	ItemCount      int
	DispersionAt   time.Time // zero: immediate
	CreatedAt      time.Time
	// What the tracker reads of a batch (BatchTracking), each "" or nil
	// when the provider does not say: the paying account, the payment type
	// as the provider spells it, the provider's message on the status, and
	// the recurrence of a scheduled batch (Interval in the contract's
	// spelling, BIWEEK or MONTH).
	OriginAccountID string
	PaymentType     string
	StatusMessage   string
	Recurring       *Recurring
}

// BatchEvent is a verified webhook of a batch rail, mapped. Exactly one of
// Batch and Item is set for a change the pipeline knows; neither for an
// event it does not know (the caller acknowledges and ignores it).
//
// What the signature covers is the rail's to say (its VerifyWebhook
// documents it); at least the entity's provider id, status and amount are
// always covered. Other fields are informative: check them against our
// own records before acting on them.
type BatchEvent struct {
	Name  string // the provider's event name
	Batch *Batch
	// Item is one item's change. Item.ID, our requestId, is "" when the
	// rail's events do not carry it (Wompi's do not): map Item.ProviderID
	// back through the submission's record, or through Items.
	Item *Payout
	// BatchProviderID is the provider id of Item's batch, when the event
	// names it (unsigned on Wompi).
	BatchProviderID string
	SentAt          time.Time
	// SignedAt is the time the signature covers (Wompi's timestamp); zero
	// when the rail's events carry none or it is not after the epoch.
	SignedAt time.Time
}

// ErrUnverifiedWebhook wraps every refusal of VerifyWebhook: a forged, an
// unsigned, an altered or a malformed webhook. Answer it 401 and drop it.
// The refusal is a *WebhookError, which says why (RefusalOf).
var ErrUnverifiedWebhook = errors.New("rail: unverified webhook")

// BatchPayouts is a batch rail's client (Wompi): what the dispatcher and
// the tracker need of it. Every error of a call to the provider carries a
// Class (ClassOf); an error before anything was sent says so by its class
// (Permanent, or Retryable when a lookup the rail needs failed).
//
// Limits: it neither retries a create nor rate-limits; the caller does
// both, and reuses the same idempotency key for every attempt of a batch.
type BatchPayouts interface {
	// Rail names the rail.
	Rail() Name
	// CreateBatch sends one batch under an idempotency key (1-64 of
	// [A-Za-z0-9-], derived from our batch id). Its error's class says
	// what may follow:
	//   - OutcomeUnknown: the batch may exist. Retry with the same key, or
	//     look it up with FindBatches; never send it under a new key before
	//     FindBatches proves it absent.
	//   - AlreadyExists: the key was used (the batch exists): FindBatches.
	//   - Rejected: refused as sent. Error.Items names the refused items
	//     when the provider says which (empty: the whole batch). Taken at
	//     its word only when no earlier attempt of the batch may have
	//     landed; otherwise FindBatches decides.
	//   - Deferred: refused for now (a daily limit, the balance, the daily
	//     batch cap): send it again later, with the same key while it
	//     lives.
	//   - Retryable: not applied; Unauthorized, Permanent: see Class.
	// The answer carries no item ids (Items reads them) and, on Wompi, no
	// status.
	CreateBatch(ctx context.Context, idempotencyKey string, r BatchRequest) (Batch, error)
	// FindBatches returns every batch the provider holds under our
	// reference. None proves the batch absent only once no earlier attempt
	// can still land (see the rail's documentation of deadlines); more
	// than one is a batch paid twice.
	FindBatches(ctx context.Context, reference string) ([]Batch, error)
	// Items walks every item of a batch, every page, with our requestId as
	// Payout.ID. A failed page yields its error once and stops.
	Items(ctx context.Context, providerBatchID string) iter.Seq2[Payout, error]
	// ListBatches walks every batch created since a time, every page, for
	// rebuilds. It may also yield earlier batches (a rail filters by its
	// business day), never fewer. It is walked while no dispatcher posts
	// (a recovery after a Redis loss): a rail may refuse, retryably, a
	// walk whose listing grew between pages (an earlier page from a copy
	// behind).
	ListBatches(ctx context.Context, since time.Time) iter.Seq2[Batch, error]
	// VerifyWebhook checks a webhook's signature and decodes it. Every
	// refusal wraps ErrUnverifiedWebhook. A replayed genuine webhook
	// verifies again: deduplication is the tracker's.
	VerifyWebhook(h http.Header, body []byte) (BatchEvent, error)
}

// ValidIdempotencyKey reports whether k is a key a batch rail takes
// (CreateBatch): 1 to 64 characters of ASCII letters, digits and '-'
// (Wompi's rule [doc]).
func ValidIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
