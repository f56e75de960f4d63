// Package payout is the domain of the pipeline: payout requests, batches,
// statuses and their allowed transitions, money in integer cents, the Bogota
// calendar day that Wompi's limits are counted in, the Colombian bank-code
// table, and the validation of a request against every documented rule.
//
// The types carry avro tags so that pkg/events can decode the wire records
// straight into them without an intermediate copy; the schemas themselves
// live in schemas/*.avsc and are the contract.
package payout
