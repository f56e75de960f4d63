package rail

import (
	"fmt"
	"strings"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// DefaultRoutes is RAIL_ROUTES' default: which rail pays a request that
// names none, by its currency.
const DefaultRoutes = "COP=wompi,BRL=wepayout"

// Routes maps a currency to the rail that pays requests naming no rail.
type Routes map[string]Name

// ParseRoutes reads "CUR=rail,CUR=rail". Each currency is three upper-case
// letters, each rail one of Names and paying in that currency (Currency),
// each currency at most once.
func ParseRoutes(s string) (Routes, error) {
	r := Routes{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		cur, name, ok := strings.Cut(part, "=")
		cur, name = strings.TrimSpace(cur), strings.TrimSpace(name)
		if !ok || len(cur) != 3 || strings.ToUpper(cur) != cur || !Name(name).Valid() {
			return nil, fmt.Errorf("%q is not CUR=rail with a rail among %v", part, Names)
		}
		// A rail refuses every other currency (INVALID_CURRENCY): such a
		// route would reject every request it routes.
		if Currency(Name(name)) != cur {
			return nil, fmt.Errorf("%q: rail %s pays %s only", part, name, Currency(Name(name)))
		}
		if _, dup := r[cur]; dup {
			return nil, fmt.Errorf("currency %s is routed twice", cur)
		}
		r[cur] = Name(name)
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("no route")
	}
	return r, nil
}

// ReasonUnknownRail: the request names a rail that does not exist, or names
// none and its currency has no route.
const ReasonUnknownRail payout.Reason = "UNKNOWN_RAIL"

// ReasonRailNotAvailable: the request's rail exists in the contract but this
// release cannot pay through it: it is refused at ingest rather than batched
// and left waiting. Every rail of the contract is available since the
// release that pays through SmartFastPay and WEpayout; the code stays for a
// rail added to the contract before its release.
const ReasonRailNotAvailable payout.Reason = "RAIL_NOT_AVAILABLE"

// ReasonRailNotConfigured: the dispatcher has no credentials for the
// batch's rail; the batch is deferred, never lost, and proceeds once the
// rail is configured.
const ReasonRailNotConfigured payout.Reason = "RAIL_NOT_CONFIGURED"

// ReasonRailUnavailable: a single-payout rail kept failing (5xx, 429,
// timeouts, refused credentials) past the dispatcher's patience; the
// request waits on the deferred topic and is looked up again before any
// POST.
const ReasonRailUnavailable payout.Reason = "RAIL_UNAVAILABLE"

// Choose returns the rail of a request: its own rail when it names one
// (which must be valid), else its currency's route. ok is false when
// neither gives a rail (UNKNOWN_RAIL).
func (r Routes) Choose(req *payout.Request) (Name, bool) {
	if req.Rail != nil {
		n := Name(*req.Rail)
		return n, n.Valid()
	}
	n, ok := r[req.Currency]
	return n, ok
}

// Available lists the rails this release pays through.
var Available = map[Name]bool{Wompi: true, SmartFastPay: true, WEpayout: true}
