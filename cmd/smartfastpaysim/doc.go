// Command smartfastpaysim is the thin main that serves the SmartFastPay
// payouts simulator (pkg/smartfastpay/sfptest) for the local stack. See
// docs/rails/smartfastpay.md.
package main
