package rail

// Extent is what the pages of a listing walked without a status filter
// announced so far: the most records and the most pages any of them
// announced (zero where none did). Neither provider that announces them
// publishes its order, and records are never deleted [ours], so the pages
// of one listing must agree; Lag says which page disagrees.
type Extent struct {
	Records int
	Pages   int
}

// Lag is how a page of a listing disagrees with the pages read before it.
type Lag int

const (
	// InStep: the page agrees with every earlier page.
	InStep Lag = iota
	// PageBehind: the page announces fewer records or fewer pages than an
	// earlier page, so it came from a server copy behind. In a listing
	// newest first its records sit a place earlier than on the pages read,
	// and the one it moved onto a page already read is on no page the walk
	// reads.
	PageBehind
	// EarlierBehind: in a frozen listing (nothing adds records while it is
	// walked: a recovery's, while no dispatcher posts) the page announces
	// more records or pages than an earlier page, so that earlier page came
	// from a copy behind, and in a listing newest first the newest record
	// it lacked is on no page the walk reads.
	EarlierBehind
)

func (l Lag) String() string {
	switch l {
	case PageBehind:
		return "this page came from a server copy behind"
	case EarlierBehind:
		return "an earlier page came from a server copy behind"
	default:
		return "in step"
	}
}

// Check compares a page announcing records and pages (zero for what it
// does not announce) with the pages read before it. A listing filtered by
// status is never checked: it shrinks as records change status.
func (x Extent) Check(records, pages int, frozen bool) Lag {
	switch {
	case records > 0 && records < x.Records, pages > 0 && pages < x.Pages:
		return PageBehind
	case frozen && (x.Records > 0 && records > x.Records || x.Pages > 0 && pages > x.Pages):
		return EarlierBehind
	default:
		return InStep
	}
}

// Add takes a page's announcement into the extent.
func (x *Extent) Add(records, pages int) {
	x.Records, x.Pages = max(x.Records, records), max(x.Pages, pages)
}
