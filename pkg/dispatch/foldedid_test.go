package dispatch

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// foldOurIDs rewrites WEpayout's listing, while on, to name our ids as a
// provider may echo them: upper-cased, or with spaces around them.
type foldOurIDs struct {
	base  http.RoundTripper
	on    *atomic.Bool
	space bool
	lower bool // lower-cased instead of upper-cased
	title bool // its first letter upper-cased instead
	// exact: the provider keeps the id as it echoes it, and its
	// external_id filter matches that form exactly: a lookup by our id
	// finds nothing, one by the form echoed finds the payout. kept maps
	// each form echoed to our id.
	exact bool
	kept  *sync.Map
	// creates: a create's answer names our invoice in that form too.
	creates bool
}

// invoiceField is the invoice a WEpayout create's answer names.
var invoiceField = regexp.MustCompile(`"invoice":"[^"]*"`)

func (s foldOurIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.exact && s.on.Load() && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/v2/payout/payments") {
		if v := req.URL.Query().Get("external_id"); v != "" {
			ours, ok := s.kept.Load(v)
			if !ok {
				body := []byte(`{"data":[],"meta":{"current_page":1,"last_page":1,"per_page":100,"total":0}}`)
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
			}
			req = req.Clone(req.Context())
			q := req.URL.Query()
			q.Set("external_id", ours.(string))
			req.URL.RawQuery = q.Encode()
		}
	}
	resp, err := s.base.RoundTrip(req)
	field := externalID
	switch {
	case err != nil || !s.on.Load():
		return resp, err
	case s.creates && req.Method == http.MethodPost:
		field = invoiceField
	case req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/v2/payout/payments"):
		return resp, err
	}
	return rewriteAnswer(resp, func(body []byte) ([]byte, error) {
		return field.ReplaceAllFunc(body, func(m []byte) []byte {
			name, v, _ := strings.Cut(string(m[:len(m)-1]), `:"`)
			if s.kept != nil {
				s.kept.Store(s.form(v), v)
			}
			return []byte(name + `:"` + s.form(v) + `"`)
		}), nil
	})
}

// form is id as the provider echoes it.
func (s foldOurIDs) form(id string) string {
	switch {
	case s.space:
		return " " + id + " "
	case s.lower:
		return strings.ToLower(id)
	case s.title:
		return strings.ToUpper(id[:1]) + id[1:]
	}
	return strings.ToUpper(id)
}

// Two faults: a WEpayout payee is paid and the dispatcher crashes before
// recording it; Redis is lost, and the recovery's listing echoes the
// payee's id in upper case, or with spaces around it. The rebuilt index
// must not prove the payee new (a POST without a lookup would pay it
// again): an id no requestId can be leaves the epoch incomplete, and the
// lower-case form of an upper-case id is marked suspect, so the payee is
// looked up, and the lookup refuses to call it absent.
//
// A rail may also echo a mixed-case id of ours in lower case: the index
// then holds the lower-case form, and the id itself is never proven new
// while that form is indexed.
//
// Three faults ("exact"): the rail also keeps the id in the form it
// echoes, and its filter matches that form only, so a lookup by our id
// finds nothing. The payee is looked up under the form the recovery
// listed too; a payout there proves nothing, and the payee waits instead
// of being posted again.
func TestFoldedListingIDIsNeverProvenNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, prefix string
		fold         foldOurIDs
	}{
		{"upper", "folded-upper", foldOurIDs{}},
		{"spaces", "folded-spaces", foldOurIDs{space: true}},
		{"lower", "Folded-Lower", foldOurIDs{lower: true}},
		{"upper exact", "folded-upper-exact", foldOurIDs{exact: true}},
		{"lower exact", "Folded-Lower-Exact", foldOurIDs{lower: true, exact: true}},
		{"title exact", "folded-title-exact", foldOurIDs{title: true, exact: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, e, sim, rid := paidThenListedAfterLoss(t, tc.prefix, func(on *atomic.Bool) http.RoundTripper {
				fold := tc.fold
				fold.base, fold.on, fold.kept = http.DefaultTransport, on, &sync.Map{}
				return fold
			})
			if n := sim.Accepted(rid); n != 1 {
				t.Fatalf("%s paid %d times, want 1 (complete epoch %q, lookups skipped %v)", rid, n, f.epochField("complete"),
					testutil.ToFloat64(e.m.lookupsSkipped.WithLabelValues(string(rail.WEpayout))))
			}
		})
	}
}

// Two faults: WEpayout keeps a mixed-case invoice of ours in lower case,
// its filter matching that form alone, and its create's answer names that
// form. The answer is not taken as ours (Echo: an unknown outcome), and
// the lookup by our id finds nothing: each POST after it paid the payee
// again, until the rail's patience ran out, and the deferred copy began
// again. The form the answer named is looked up too, on this attempt and
// every later one: the payout found there proves nothing, and the payee
// waits instead of being posted again.
func TestCreateAnsweredWithOurIDInAnotherCaseIsNotPostedAgain(t *testing.T) {
	t.Parallel()
	r := singleRails(t)[1](t)
	on := &atomic.Bool{}
	on.Store(true)
	r = r.through(t, foldOurIDs{base: http.DefaultTransport, on: on, lower: true, exact: true, kept: &sync.Map{}, creates: true})
	f := newFixture(t, fixtureOpt{})
	b := singleBatch(r, "Echo-Create", 1)
	rid := b.Transactions[0].RequestID
	e := r.engine(f, func(c *Config) { c.SingleConcurrency = 1; c.RailPatience = 5 * time.Second })
	f.produce(f.topics.Batches, b)
	stop, _ := f.run(e)
	eventually(t, "payee deferred", func() bool { return outcome(e, "deferred") >= 1 })
	f.clock.Advance(20 * time.Minute) // the deferred copy is due
	eventually(t, "the copy deferred", func() bool { return outcome(e, "deferred") >= 2 })
	_ = stop()
	if n := r.sim.Accepted(rid); n != 1 {
		t.Fatalf("%s paid %d times, want 1", rid, n)
	}
}

// dedupe reads the lower-case form of each single-payout requestId that
// has upper-case letters against that requestId alone (their keys follow
// the batch's in order): only the one whose lower-case form the index
// holds loses its proof; a lower-case id needs no second read.
func TestDedupeReadsEachLowerCaseFormInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	r := singleRails(t)[0](t)
	e := r.engine(f, nil)
	ctx := context.Background()
	if err := e.st.rdb.Set(ctx, e.st.reqKey("cc-3"), listedMark(r.name), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.claim(ctx, "w", "e0", "b-fold", rail.Wompi); err != nil {
		t.Fatal(err)
	}
	ids := []string{"Aa-1", "bb-2", "Cc-3", "Dd-4"}
	v, news, complete, _, err := e.st.dedupe(ctx, "w", "e0", "b-fold", r.name, ids, bytes.Repeat([]byte{modeKeep}, len(ids)))
	if err != nil || string(v) != "kkkk" || string(news) != "nn-n" || !complete {
		t.Fatalf("verdicts %q, new %q, complete %v (%v); want kkkk, nn-n (Cc-3's lower-case form is indexed), complete", v, news, complete, err)
	}
}

// The form a recovery listed outlives the takeover of its suspect mark:
// every later attempt of the batch (a deferred copy, a retry) is told it,
// and a mixed-case id whose lower-case form the rail listed as is is told
// "=", the lower-case form; other ids are told nothing. The mark itself
// stays the bare one a dispatcher of an earlier version takes over (a
// mark it cannot read would drop the payee as another batch's).
//
// Two faults: the rail listed "ABC"; batch Y of "Abc" learns the form
// through the lower-case key, then batch X of "abc" (an id that differs
// only in case) takes the suspect mark there over. Y's later attempts are
// still told "ABC": the form learnt was kept in Y's record.
func TestDedupeTellsEveryAttemptTheListedForm(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpt{})
	r := singleRails(t)[1](t)
	e := r.engine(f, nil)
	ctx := context.Background()
	rdb := e.st.rdb
	for k, v := range map[string]string{e.st.reqKey("echo-1"): suspectMark, e.st.reqKey("mixed-2"): listedMark(r.name),
		e.st.reqKey("ABC"): listedMark(r.name), e.st.reqKey("abc"): suspectMark} {
		if err := rdb.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.HSet(ctx, e.st.echoesKey(), "echo-1", "ECHO-1", "abc", "ABC").Err(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"b-echo", "b-Y", "b-X"} {
		if _, err := e.st.claim(ctx, "w", "e0", b, rail.Wompi); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{"echo-1", "Mixed-2", "plain-3"}
	want := map[int]string{0: "ECHO-1", 1: "="}
	for _, modes := range []string{"kkk", "kkk", "ppp"} {
		v, _, _, echoes, err := e.st.dedupe(ctx, "w", "e0", "b-echo", r.name, ids, []byte(modes))
		if err != nil || string(v) != "kkk" {
			t.Fatalf("%s: verdicts %q (%v)", modes, v, err)
		}
		if !maps.Equal(echoes, want) {
			t.Fatalf("%s: echoes %v, want %v", modes, echoes, want)
		}
	}
	dedupe := func(batch, id string) map[int]string {
		t.Helper()
		v, _, _, echoes, err := e.st.dedupe(ctx, "w", "e0", batch, r.name, []string{id}, []byte("k"))
		if err != nil || string(v) != "k" {
			t.Fatalf("%s of %s: verdicts %q (%v)", id, batch, v, err)
		}
		return echoes
	}
	if got := dedupe("b-Y", "Abc"); got[0] != "ABC" {
		t.Fatalf("Y's first attempt: echoes %v, want ABC", got)
	}
	if got := dedupe("b-X", "abc"); got[0] != "ABC" {
		t.Fatalf("X: echoes %v, want ABC", got)
	}
	if got := dedupe("b-Y", "Abc"); got[0] != "ABC" {
		t.Fatalf("Y's later attempt after X took the mark over: echoes %v, want ABC", got)
	}
	if got := echoForms("echo-1", "ECHO-1"); !slices.Equal(got, []string{"ECHO-1"}) {
		t.Errorf("forms %v", got)
	}
	if got := echoForms("Mixed-2", "="); !slices.Equal(got, []string{"mixed-2"}) {
		t.Errorf("forms %v", got)
	}
	if got := echoForms("echo-1", ""); !slices.Equal(got, []string{"ECHO-1"}) {
		t.Errorf("forms of a mark that kept no form %v, want the upper-case one", got)
	}
}
