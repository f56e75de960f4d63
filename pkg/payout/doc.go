// Package payout is the provider-neutral domain of the pipeline: payout
// requests, batches, transactions and status changes, money in integer
// cents, the statuses and their forward-only transitions (CanTransition,
// CheckLifecycles), the reason codes, deterministic event ids, the
// calendar Day of a rail's time zone (DayIn, StartIn, BudgetDayIn: the
// caller names the zone, rail.Location), and the validation of the
// envelope every rail needs (ValidateEnvelope).
//
// What belongs to one provider lives with that rail: Wompi's rules (the
// Colombian bank-code table, legal ids, account numbers, names, the later
// Bogota day of a dispersion, its published daily limits, its transaction
// statuses) in pkg/wompi (Validate, ColombianBanks, DefaultDailyLimitCents,
// DailyBatchCap, TransactionStatus.PayoutStatus); SmartFastPay's and
// WEpayout's in pkg/smartfastpay and pkg/wepayout; the business-day zone and
// the currency of each rail in pkg/rail (Location, Currency).
//
// The types carry avro tags so that pkg/events can decode the wire records
// straight into them without an intermediate copy; the schemas themselves
// live in schemas/*.avsc and are the contract.
package payout
