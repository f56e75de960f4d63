package weptest

import (
	"crypto/sha256"
	"encoding/hex"
)

// signature is WEpayout's webhook signature [doc]: the hex SHA-256 of
// invoice + currency + amount + api key, concatenated. Computed here from
// the amount's text as received, independently of the client's
// wepayout.WebhookSignature, which computes it from our cents.
func signature(invoice, currency, amountText, apiKey string) string {
	sum := sha256.Sum256([]byte(invoice + currency + amountText + apiKey))
	return hex.EncodeToString(sum[:])
}
