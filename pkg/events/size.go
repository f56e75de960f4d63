package events

import (
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// MaxBatchOverhead bounds the bytes of an encoded PayoutBatch outside its
// transactions and its variable strings (originAccountId, the recurrence
// description): the framing header, the batch id, enums, numbers, unions
// and the array's block headers for up to MaxTransactions transactions.
// BatchOverhead adds the variable strings.
const MaxBatchOverhead = 10 + // framing header (SOE 10, Confluent 5)
	(64 + 1) + // batchId: a reference of at most 64 bytes
	1 + // paymentType
	(1 + 10) + // schedule.dispersionDatetime union
	(1 + 1 + 5 + 1) + // schedule.recurring union, interval, months, description union
	(MaxTransactions/1000+1)*(10+10) + 1 + // array blocks: count and byte size each, then the end
	10 + 5 + 10 + 5 + (1 + 10) + // total, count, createdAt, attempt, notBefore
	(1 + 1 + 16) // rail union and a rail name of at most 16 bytes

// BatchOverhead returns an upper bound on the encoded size of a PayoutBatch
// for originAccountID and schedule s, without its transactions: add
// TransactionSize for each transaction to bound what AppendBatch writes.
func BatchOverhead(originAccountID string, s *payout.Schedule) int {
	n := MaxBatchOverhead + stringSize(len(originAccountID))
	if s.Recurring != nil && s.Recurring.Description != nil {
		n += stringSize(len(*s.Recurring.Description))
	}
	return n
}

// TransactionSize returns the exact size of tx in an encoded PayoutBatch
// (Avro binary), so batches can be cut by bytes without encoding them.
func TransactionSize(tx *payout.Transaction) int {
	b := &tx.Beneficiary
	n := stringSize(len(tx.RequestID)) +
		1 + // legalIdType: an enum index below 64
		stringSize(len(b.LegalID)) +
		stringSize(len(b.Name)) +
		stringSize(len(b.Email)) +
		stringSize(len(b.BankCode)) +
		1 + // bankId union index
		1 + // accountType
		stringSize(len(b.AccountNumber)) +
		longSize(tx.AmountInCents) +
		longSize(tx.RequestedAt.UnixMilli())
	if b.BankID != nil {
		n += stringSize(len(*b.BankID))
	}
	// The rails' optional payee fields: a union index each, and the string
	// when set.
	for _, f := range []*string{b.Phone, b.PixKey, b.Branch, b.BranchDigit, b.AccountDigit} {
		n++
		if f != nil {
			n += stringSize(len(*f))
		}
	}
	return n
}

func stringSize(n int) int { return longSize(int64(n)) + n }

// longSize is the length of v as an Avro long: a zig-zag varint.
func longSize(v int64) int {
	u := uint64((v << 1) ^ (v >> 63))
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
