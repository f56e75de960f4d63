package ctl

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/events"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wepayout"
	"github.com/wompi-payouts/pipeline/pkg/wepayout/weptest"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// reconcileDay is the day the tests pay on, in Bogota.
const reconcileDay = "2026-11-20"

// reconcileEnv is the Wompi simulator on a manual clock (so that a day can
// be over and its report listed) and a kfake status topic. The status
// events are written by the test as the dispatcher and the tracker write
// them (BATCHED, then SUBMITTED with the payout and transaction ids and
// the amount, then the final status), so that they can disagree with the
// provider on purpose.
type reconcileEnv struct {
	t     *testing.T
	sim   *wompitest.Server
	clock *wompitest.ManualClock
	wc    *wompi.Client
	k     *testenv.Cluster
	codec *events.Codec
	topic string
	env   map[string]string
	at    time.Time // 10:00 of the day in Bogota
}

func newReconcileEnv(t *testing.T) *reconcileEnv {
	d, _ := payout.ParseDay(reconcileDay)
	at := d.StartIn(rail.Location(rail.Wompi)).Add(10 * time.Hour)
	clock := wompitest.NewManualClock(at)
	sim := wompitest.NewTestServer(t, wompitest.Config{Clock: clock, SettleDelay: time.Hour})
	k := testenv.Kafka(t)
	topic := k.Topic(t, "status", 3)
	c, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &reconcileEnv{t: t, sim: sim, clock: clock, wc: sim.Client(nil), k: k, codec: c, topic: topic, at: at,
		env: map[string]string{"KAFKA_BROKERS": k.BrokersCSV(), "TOPIC_STATUS": topic, "WOMPI_BASE_URL": sim.BaseURL(),
			"WOMPI_API_KEY": "sim-api-key", "WOMPI_PRINCIPAL_ID": "sim-principal"}}
}

// pay creates one Wompi payout (batch reference ref) of the given requests
// and amounts, settles it, and returns each request's transaction.
func (e *reconcileEnv) pay(ref string, amounts map[string]int64) (payoutID string, txs map[string]wompi.Transaction) {
	e.t.Helper()
	ctx := context.Background()
	req := &wompi.CreatePayoutRequest{Reference: ref, AccountID: wompitest.AccountMain, PaymentType: "PROVIDERS"}
	for id, amount := range amounts {
		req.Transactions = append(req.Transactions, wompi.TransactionRequest{LegalIDType: "CC", LegalID: "1020304050",
			BankID: wompitest.BankID("1007"), AccountType: "AHORROS", AccountNumber: "31234567894", Name: "Valentina Ríos",
			Email: "valentina.rios@example.co", Amount: amount, Reference: id})
	}
	res, err := e.wc.CreatePayout(ctx, "idem-"+ref, req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.sim.SettleAll()
	txs = map[string]wompi.Transaction{}
	for tx, err := range e.wc.PayoutTransactions(ctx, res.PayoutID, wompi.TransactionsFilter{}) {
		if err != nil {
			e.t.Fatal(err)
		}
		txs[tx.Reference] = tx
	}
	if len(txs) != len(amounts) {
		e.t.Fatalf("payout %s holds %d transactions, want %d", res.PayoutID, len(txs), len(amounts))
	}
	return res.PayoutID, txs
}

// history writes a request's status events: BATCHED, SUBMITTED (with ids
// and amount, at at) and then the given statuses.
func (e *reconcileEnv) history(id, payoutID, txID string, amount int64, at time.Time, then ...payout.Status) {
	e.t.Helper()
	w := "wompi"
	batch := "batch-of-" + id
	mk := func(st payout.Status, withIDs bool) *kgo.Record {
		sc := payout.StatusChange{EventID: payout.EventID("status", id, string(st)), RequestID: id, Status: st, AmountInCents: amount,
			OriginAccountID: wompitest.AccountMain, OccurredAt: at, Source: payout.SourceDispatcher, Rail: &w, BatchID: &batch}
		if withIDs {
			sc.PayoutID, sc.TransactionID = &payoutID, &txID
		}
		v, err := e.codec.AppendStatusChange(nil, &sc)
		if err != nil {
			e.t.Fatal(err)
		}
		return &kgo.Record{Topic: e.topic, Key: []byte(id), Value: v}
	}
	recs := []*kgo.Record{mk(payout.StatusBatched, false), mk(payout.StatusSubmitted, true)}
	for _, st := range then {
		recs = append(recs, mk(st, true))
	}
	e.k.Produce(e.t, e.topic, recs...)
}

// rejectedAtIngest writes a REJECTED without provider ids.
func (e *reconcileEnv) rejectedAtIngest(id string) {
	e.k.Produce(e.t, e.topic, statusRecord(e.t, e.codec, e.topic, id, payout.StatusRejected, e.at))
}

func (e *reconcileEnv) reconcile(args ...string) (ReconcileResult, string, int) {
	e.t.Helper()
	run := func(extra ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append(append([]string{"reconcile", "--day", reconcileDay}, args...), extra...),
			func(s string) (string, bool) { v, ok := e.env[s]; return v, ok }, &out, &errb)
		return out.String(), errb.String(), code
	}
	js, errs, code := run("--output", "json")
	if code != 0 && code != 1 {
		e.t.Fatalf("reconcile: exit %d: %s", code, errs)
	}
	var r ReconcileResult
	decode(e.t, js, &r)
	table, _, code2 := run()
	if code2 != code {
		e.t.Fatalf("reconcile exits %d with --output json and %d without", code, code2)
	}
	return r, table, code
}

func TestReconcileCleanDay(t *testing.T) {
	e := newReconcileEnv(t)
	amounts := map[string]int64{"rec-a": 1_250_000, "rec-b": 730_000, "rec-c": 99_900}
	pid, txs := e.pay("batch-clean", amounts)
	for id, tx := range txs {
		e.history(id, pid, tx.ID, amounts[id], e.at, wompiStatus(string(tx.Status)))
	}
	e.rejectedAtIngest("rec-rejected")
	// Submitted the day before: not the day's, and the provider's report
	// of the day does not hold it.
	e.history("rec-yesterday", "payout-x", "tx-x", 500_000, e.at.Add(-24*time.Hour))

	// The day is not over: its report is not listed yet.
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"reconcile", "--day", reconcileDay}, func(s string) (string, bool) { v, ok := e.env[s]; return v, ok },
		&out, &errb); code != 1 || !strings.Contains(errb.String(), "no daily transactions report") {
		t.Fatalf("before the day ends: exit %d: %s", code, errb.String())
	}
	e.clock.Advance(24 * time.Hour) // the day is over: its report is listed
	r, table, code := e.reconcile()
	t.Logf("payoutsctl reconcile --day %s\n%s", reconcileDay, table)
	if code != 0 || len(r.Differences) != 0 {
		t.Fatalf("exit %d, differences %+v", code, r.Differences)
	}
	if len(r.Rails) != 1 || r.Rails[0].Rail != "wompi" || r.Rails[0].Ours != 3 || r.Rails[0].Provider != 3 || r.Rails[0].Matched != 3 {
		t.Fatalf("summary %+v", r.Rails)
	}
	if r.Rails[0].From.Format(time.RFC3339) != reconcileDay+"T00:00:00-05:00" {
		t.Fatalf("the day starts at %v, want Bogota midnight", r.Rails[0].From)
	}
	if !strings.Contains(table, "no difference") {
		t.Fatalf("table:\n%s", table)
	}
}

func TestReconcileNamesEachDifference(t *testing.T) {
	e := newReconcileEnv(t)
	amounts := map[string]int64{"rec-ok": 1_000_000, "rec-amount": 2_000_000, "rec-status": 3_000_000, "rec-unknown": 400_000, "rec-rejected": 450_000}
	pid, txs := e.pay("batch-differs", amounts)
	for _, id := range []string{"rec-ok", "rec-amount", "rec-status"} {
		if txs[id].Status != wompi.TransactionApproved {
			t.Fatalf("%s settled %s; the test expects APPROVED", id, txs[id].Status)
		}
	}
	e.history("rec-ok", pid, txs["rec-ok"].ID, 1_000_000, e.at, payout.StatusApproved)
	e.history("rec-amount", pid, txs["rec-amount"].ID, 2_000_100, e.at, payout.StatusApproved) // one peso more than Wompi paid
	e.history("rec-status", pid, txs["rec-status"].ID, 3_000_000, e.at, payout.StatusFailed)   // Wompi says APPROVED
	e.history("rec-ghost", "payout-ghost", "tx-ghost", 700_000, e.at.Add(time.Hour))           // Wompi never got it
	// rec-unknown: Wompi holds it, we have no event of it. rec-rejected:
	// Wompi holds it, and all we said of it is that ingest rejected it.
	e.rejectedAtIngest("rec-rejected")
	e.clock.Advance(24 * time.Hour)

	r, table, code := e.reconcile()
	t.Logf("payoutsctl reconcile --day %s\n%s", reconcileDay, table)
	if code != 1 {
		t.Fatalf("exit %d with differences", code)
	}
	got := map[string]string{}
	for _, d := range r.Differences {
		got[d.RequestID] += d.Kind
	}
	want := map[string]string{"rec-amount": AmountDiffers, "rec-status": StatusDiffers, "rec-ghost": MissingAtProvider, "rec-unknown": MissingInOurEvents,
		"rec-rejected": MissingInOurEvents}
	if len(got) != len(want) {
		t.Errorf("differences %+v", r.Differences)
	}
	for id, kind := range want {
		if got[id] != kind {
			t.Errorf("%s: %q, want %q", id, got[id], kind)
		}
		if !strings.Contains(table, id) {
			t.Errorf("the table does not name %s", id)
		}
	}
	for _, kind := range want {
		if !strings.Contains(table, "Difference: "+kind) {
			t.Errorf("the table has no section %q", kind)
		}
	}
	for _, d := range r.Differences {
		if d.RequestID == "rec-amount" && (d.OurAmountInCents != 2_000_100 || d.ProviderAmountInCents != 2_000_000) {
			t.Errorf("amounts %+v", d)
		}
		if d.RequestID == "rec-rejected" && d.OurStatus != "REJECTED" {
			t.Errorf("rejected at ingest, paid by Wompi: %+v", d)
		}
		if d.RequestID == "rec-status" && (d.OurStatus != "FAILED" || d.ProviderStatus != "APPROVED") {
			t.Errorf("statuses %+v", d)
		}
	}
	if r.Rails[0].Matched != 1 {
		t.Errorf("matched %d, want 1 (rec-ok)", r.Rails[0].Matched)
	}
}

// TestReconcileFlags: the day is required, and a rail without credentials
// is refused by name.
func TestReconcileFlags(t *testing.T) {
	var out, errb bytes.Buffer
	env := map[string]string{}
	lookup := func(s string) (string, bool) { v, ok := env[s]; return v, ok }
	if code := Main(context.Background(), []string{"reconcile"}, lookup, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--day") {
		t.Fatalf("without --day: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	env["PAYOUTSCTL_DAY"], env["PAYOUTSCTL_RAIL"] = reconcileDay, "wepayout"
	if code := Main(context.Background(), []string{"reconcile"}, lookup, &out, &errb); code != 1 || !strings.Contains(errb.String(), "wepayout is not enabled") {
		t.Fatalf("a rail without credentials: exit %d: %s", code, errb.String())
	}
}

// TestReconcileWEpayoutInItsTimeZone: a WEpayout payout created at 00:30
// in São Paulo (22:30 the evening before in Bogota) belongs to the São
// Paulo day: reconcile --rail wepayout counts it there, listing the
// provider through its client, and an amount that disagrees is named.
func TestReconcileWEpayoutInItsTimeZone(t *testing.T) {
	sp := rail.Location(rail.WEpayout)
	created := time.Date(2026, 11, 21, 0, 30, 0, 0, sp)
	clk := weptest.NewManualClock(created)
	sim := weptest.NewTestServer(t, weptest.Config{Clock: clk, StepJitter: -1})
	wc := sim.Client(wepayout.Config{})
	ctx := context.Background()
	k := testenv.Kafka(t)
	topic := k.Topic(t, "status", 3)
	codec, err := events.NewCodec(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := string(rail.WEpayout)
	submit := func(id string, amount, ours int64) {
		p, err := wc.Create(ctx, rail.PayoutRequest{ID: id, AmountInCents: amount, Currency: "BRL", CallbackURL: "http://127.0.0.1:1/hook",
			Payee: rail.Payee{Name: "Maria Souza", LegalIDType: "CPF", LegalID: "52998224725", PixKey: "52998224725"}})
		if err != nil {
			t.Fatal(err)
		}
		pid := p.ProviderID
		sc := payout.StatusChange{EventID: payout.EventID("status", id, "SUBMITTED"), RequestID: id, Status: payout.StatusSubmitted,
			AmountInCents: ours, OriginAccountID: "wepayout", OccurredAt: created, Source: payout.SourceDispatcher, Rail: &w, TransactionID: &pid}
		v, err := codec.AppendStatusChange(nil, &sc)
		if err != nil {
			t.Fatal(err)
		}
		k.Produce(t, topic, &kgo.Record{Topic: topic, Key: []byte(id), Value: v})
	}
	submit("wep-ok", 10_000, 10_000)
	submit("wep-amount", 20_000, 20_500)
	env := map[string]string{"KAFKA_BROKERS": k.BrokersCSV(), "TOPIC_STATUS": topic, "WEPAYOUT_BASE_URL": sim.URL(),
		"WEPAYOUT_API_KEY": weptest.DefaultAPIKey}
	run := func(day string) (ReconcileResult, int) {
		var out, errb bytes.Buffer
		code := Main(ctx, []string{"reconcile", "--day", day, "--rail", "wepayout", "--output", "json"},
			func(s string) (string, bool) { v, ok := env[s]; return v, ok }, &out, &errb)
		if code != 0 && code != 1 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var r ReconcileResult
		decode(t, out.String(), &r)
		return r, code
	}
	r, code := run("2026-11-21")
	if code != 1 || len(r.Differences) != 1 || r.Differences[0].RequestID != "wep-amount" || r.Differences[0].Kind != AmountDiffers {
		t.Fatalf("exit %d, differences %+v", code, r.Differences)
	}
	if r.Rails[0].Ours != 2 || r.Rails[0].Provider != 2 || r.Rails[0].Matched != 1 || r.Rails[0].TimeZone != "America/Sao_Paulo" {
		t.Fatalf("summary %+v", r.Rails)
	}
	// The Bogota day of the creation holds nothing of São Paulo's.
	if r, code := run("2026-11-20"); code != 0 || r.Rails[0].Ours != 0 || r.Rails[0].Provider != 0 {
		t.Fatalf("the day before: exit %d, %+v %+v", code, r.Rails, r.Differences)
	}
}

// TestStatusAgrees: statuses not final on both sides agree (the tracker
// has not heard yet); a final status must be the provider's; a provider
// status we do not know agrees only with a status of ours not final.
func TestStatusAgrees(t *testing.T) {
	for _, c := range []struct {
		ours   payout.Status
		theirs string
		agree  bool
	}{
		{payout.StatusSubmitted, "PENDING", true},
		{payout.StatusPending, "PROCESSING", true},
		{payout.StatusApproved, "APPROVED", true},
		{payout.StatusReturned, "APPROVED", true},
		{payout.StatusFailed, "FAILED", true},
		{payout.StatusCancelled, "CANCELLED", true},
		{payout.StatusSubmitted, "APPROVED", false},
		{payout.StatusApproved, "PENDING", false},
		{payout.StatusFailed, "APPROVED", false},
		{payout.StatusApproved, "CANCELLED", false},
		{payout.StatusSubmitted, "SOMETHING_NEW", true},
		{payout.StatusApproved, "SOMETHING_NEW", false},
	} {
		if got := statusAgrees(c.ours, wompiStatus(c.theirs)); got != c.agree {
			t.Errorf("ours %s, Wompi %s: agree %v, want %v", c.ours, c.theirs, got, c.agree)
		}
	}
}

// compareDay took any provider row of a requestId for our payment of it,
// whatever its rail and its provider id. Our SUBMITTED names one payment,
// a rail and the provider's id: any other row of the requestId is a second
// payment, reported "more than once at provider" (with our payment named),
// and a day whose rows hold only others is also "missing at the provider".
//
// Fault sequences: (a) req-x is submitted and paid on Wompi (wompi-tx-1)
// and paid again, under the same requestId, on SmartFastPay (sfp-999):
// SmartFastPay's day matched it. (b) req-y is submitted at 23:00 on day D
// (wompi-tx-1); Wompi's report of D+1 holds req-y under wompi-tx-2, a
// second payment: the D+1 reconcile matched it. A row of D+1 under our own
// id (a payout created just past midnight) still matches.
func TestReconcileReportsARowThatIsNotOurPayment(t *testing.T) {
	d, err := payout.ParseDay(reconcileDay)
	if err != nil {
		t.Fatal(err)
	}
	dayD := d.StartIn(rail.Location(rail.Wompi)) // SmartFastPay's day too (Bogota)
	ours := func(r rail.Name, at time.Time, providerID string) map[string]*ourRequest {
		return map[string]*ourRequest{"req-x": {rail: r, status: payout.StatusApproved, submittedAt: at, amount: 500_000, providerID: providerID}}
	}
	row := func(providerID string) providerRow {
		return providerRow{id: "req-x", providerID: providerID, status: "APPROVED", mapped: payout.StatusApproved, amount: 500_000}
	}
	for _, c := range []struct {
		name    string
		ours    map[string]*ourRequest
		rail    rail.Name
		day     int // 0: day D, 1: D+1
		rows    []providerRow
		want    []string // the kinds, in compareDay's order
		other   string   // the provider id of the "more than once" row of a second payment
		matched int
	}{
		{"our payment on its rail", ours(rail.Wompi, dayD.Add(2*time.Hour), "wompi-tx-1"), rail.Wompi, 0,
			[]providerRow{row("wompi-tx-1")}, nil, "", 1},
		{"paid again on another rail", ours(rail.Wompi, dayD.Add(2*time.Hour), "wompi-tx-1"), rail.SmartFastPay, 0,
			[]providerRow{row("sfp-999")}, []string{PaidMoreThanOnce}, "sfp-999", 0},
		{"another rail under our id", ours(rail.Wompi, dayD.Add(2*time.Hour), "tx-1"), rail.SmartFastPay, 0,
			[]providerRow{row("tx-1")}, []string{PaidMoreThanOnce}, "tx-1", 0},
		{"paid again the next day", ours(rail.Wompi, dayD.Add(23*time.Hour), "wompi-tx-1"), rail.Wompi, 1,
			[]providerRow{row("wompi-tx-2")}, []string{PaidMoreThanOnce}, "wompi-tx-2", 0},
		{"our payment created past midnight", ours(rail.Wompi, dayD.Add(24*time.Hour-time.Second), "wompi-tx-1"), rail.Wompi, 1,
			[]providerRow{row("wompi-tx-1")}, nil, "", 1},
		{"only another payment on our day", ours(rail.Wompi, dayD.Add(2*time.Hour), "wompi-tx-1"), rail.Wompi, 0,
			[]providerRow{row("wompi-tx-2")}, []string{MissingAtProvider, PaidMoreThanOnce}, "wompi-tx-2", 0},
		{"ours and another on our day", ours(rail.Wompi, dayD.Add(2*time.Hour), "wompi-tx-1"), rail.Wompi, 0,
			[]providerRow{row("wompi-tx-1"), row("wompi-tx-2")}, []string{PaidMoreThanOnce}, "wompi-tx-2", 0},
		{"ours listed twice", ours(rail.Wompi, dayD.Add(2*time.Hour), "wompi-tx-1"), rail.Wompi, 0,
			[]providerRow{row("wompi-tx-1"), row("wompi-tx-1")}, []string{PaidMoreThanOnce}, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			from := dayD.AddDate(0, 0, c.day)
			var rr RailReconcile
			diffs := compareDay(c.rail, from, from.AddDate(0, 0, 1), c.ours, c.rows, &rr)
			var kinds []string
			for _, d := range diffs {
				kinds = append(kinds, d.Kind)
				if d.Kind == PaidMoreThanOnce && c.other != "" && (d.ProviderID != c.other || d.OurProviderID != c.ours["req-x"].providerID ||
					d.OurRail != string(c.ours["req-x"].rail)) {
					t.Errorf("the second payment's difference %+v, want provider id %s and ours named", d, c.other)
				}
			}
			if !slices.Equal(kinds, c.want) || rr.Matched != c.matched {
				t.Errorf("ours %+v, %s rows %+v: differences %q, matched %d; want %q, matched %d",
					*c.ours["req-x"], c.rail, c.rows, kinds, rr.Matched, c.want, c.matched)
			}
		})
	}
}

// The same through the Wompi simulator and the command: a requestId paid
// on day D (our SUBMITTED names that transaction) and paid again in
// another payout on D+1 is "more than once at provider" on D+1, the
// table naming both payments; a payout of D+1 under the id our SUBMITTED
// of D names (created just past midnight) matches.
func TestReconcileNextDayReportsASecondPaymentOfARequest(t *testing.T) {
	e := newReconcileEnv(t)
	pid, txs := e.pay("batch-day-d", map[string]int64{"rec-twice": 600_000})
	first := txs["rec-twice"]
	e.history("rec-twice", pid, first.ID, 600_000, e.at, payout.StatusApproved)

	e.clock.Advance(14*time.Hour + time.Second) // 00:00:01 of D+1 in Bogota
	pid2, txs2 := e.pay("batch-day-d1", map[string]int64{"rec-twice": 600_000, "rec-late": 300_000})
	second := txs2["rec-twice"]
	// rec-late was submitted a second before midnight, its payout created
	// a second after.
	e.history("rec-late", pid2, txs2["rec-late"].ID, 300_000, e.at.Add(14*time.Hour-time.Second), payout.StatusApproved)
	e.clock.Advance(24 * time.Hour) // D+1 is over

	var out, errb bytes.Buffer
	d1 := "2026-11-21"
	lookup := func(s string) (string, bool) { v, ok := e.env[s]; return v, ok }
	code := Main(context.Background(), []string{"reconcile", "--day", d1, "--output", "json"}, lookup, &out, &errb)
	var r ReconcileResult
	if code == 1 {
		decode(t, out.String(), &r)
	}
	if code != 1 || len(r.Differences) != 1 {
		t.Fatalf("reconcile --day %s: exit %d, %s %+v", d1, code, errb.String(), r.Differences)
	}
	if d := r.Differences[0]; d.Kind != PaidMoreThanOnce || d.RequestID != "rec-twice" || d.ProviderID != second.ID || d.OurProviderID != first.ID {
		t.Errorf("rec-twice paid as %s on D and as %s on D+1: %+v", first.ID, second.ID, d)
	}
	if r.Rails[0].Matched != 1 {
		t.Errorf("matched %d, want 1 (rec-late)", r.Rails[0].Matched)
	}
	out.Reset()
	Main(context.Background(), []string{"reconcile", "--day", d1}, lookup, &out, &errb)
	t.Logf("payoutsctl reconcile --day %s\n%s", d1, out.String())
	if !strings.Contains(out.String(), "OUR PAYMENT") || !strings.Contains(out.String(), "wompi "+first.ID) {
		t.Errorf("the table does not name our payment %s:\n%s", first.ID, out.String())
	}
}

// TestReconcileRequestWhoseSubmittedWasSkipped: the dispatcher does not
// emit SUBMITTED when the provider's status reached the topic first, nor
// after a Redis loss when it adopts a batch it finds at the provider
// (README, "SUBMITTED may be missing from a path"); the tracker's events
// then carry the provider's transaction id. reconcile read a provider id
// from SUBMITTED only, so such a request, paid once, was "missing in our
// events" (the provider holds it, we have no trace of it), and its second
// payment on a later day was "missing in our events" again, never "more
// than once at provider".
func TestReconcileRequestWhoseSubmittedWasSkipped(t *testing.T) {
	e := newReconcileEnv(t)
	pid, txs := e.pay("batch-nosub", map[string]int64{"rec-nosub": 800_000, "rec-nosub-twice": 900_000})
	w, batch := "wompi", "batch-nosub"
	noSubmitted := func(id string, payoutID, txID string, amount int64) {
		var recs []*kgo.Record
		for i, st := range []payout.Status{payout.StatusBatched, payout.StatusPending, payout.StatusApproved} {
			sc := payout.StatusChange{EventID: payout.EventID("status", id, string(st)), RequestID: id, Status: st, AmountInCents: amount,
				OriginAccountID: wompitest.AccountMain, OccurredAt: e.at.Add(time.Duration(i) * time.Minute), Source: payout.SourcePoll, BatchID: &batch}
			if st == payout.StatusBatched {
				sc.Source, sc.Rail = payout.SourceIngest, &w
			} else {
				sc.PayoutID, sc.TransactionID = &payoutID, &txID
			}
			v, err := e.codec.AppendStatusChange(nil, &sc)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: e.topic, Key: []byte(id), Value: v})
		}
		e.k.Produce(t, e.topic, recs...)
	}
	noSubmitted("rec-nosub", pid, txs["rec-nosub"].ID, 800_000)
	noSubmitted("rec-nosub-twice", pid, txs["rec-nosub-twice"].ID, 900_000)
	e.clock.Advance(24 * time.Hour) // day D is over; D+1 at 10:00
	_, txs2 := e.pay("batch-nosub-again", map[string]int64{"rec-nosub-twice": 900_000})
	e.clock.Advance(24 * time.Hour) // D+1 is over

	r, table, _ := e.reconcile()
	t.Logf("payoutsctl reconcile --day %s\n%s", reconcileDay, table)
	if len(r.Differences) != 0 {
		t.Errorf("day D: each request paid once, as our events say: differences %+v", r.Differences)
	}

	var out, errb bytes.Buffer
	lookup := func(s string) (string, bool) { v, ok := e.env[s]; return v, ok }
	code := Main(context.Background(), []string{"reconcile", "--day", "2026-11-21", "--output", "json"}, lookup, &out, &errb)
	var r1 ReconcileResult
	decode(t, out.String(), &r1)
	if code != 1 || len(r1.Differences) != 1 {
		t.Fatalf("day D+1: exit %d, %s differences %+v", code, errb.String(), r1.Differences)
	}
	if d := r1.Differences[0]; d.Kind != PaidMoreThanOnce || d.RequestID != "rec-nosub-twice" || d.ProviderID != txs2["rec-nosub-twice"].ID ||
		d.OurProviderID != txs["rec-nosub-twice"].ID {
		t.Errorf("day D+1: rec-nosub-twice paid as %s on D and as %s on D+1: %+v, want %q naming both",
			txs["rec-nosub-twice"].ID, txs2["rec-nosub-twice"].ID, d, PaidMoreThanOnce)
	}
}
