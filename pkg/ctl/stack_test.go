package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wompi-payouts/pipeline/pkg/localrun"
	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/rail"
	"github.com/wompi-payouts/pipeline/pkg/submitted"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
	"github.com/wompi-payouts/pipeline/pkg/wompi"
	"github.com/wompi-payouts/pipeline/pkg/wompi/wompitest"
)

// stack is the real pipeline (ingest, dispatcher, tracker on kfake, a real
// redis-server and the Wompi simulator) as the local run starts it, with
// payoutsctl's environment pointing at it.
type stack struct {
	t   *testing.T
	s   *localrun.Stack
	env map[string]string
	cl  *kgo.Client
}

func startStack(t *testing.T, settle time.Duration) *stack {
	t.Helper()
	rs := testenv.RedisOwn(t)
	ctx := context.Background()
	s, err := localrun.Start(ctx, localrun.Options{Partitions: 3, RedisURL: rs.URL(), Out: io.Discard, Log: io.Discard,
		SettleDelay: settle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	env := map[string]string{
		"KAFKA_BROKERS": strings.Join(s.Brokers, ","), "REDIS_URL": rs.URL(),
		"WOMPI_BASE_URL": s.SimURL, "WOMPI_API_KEY": "sim-api-key", "WOMPI_PRINCIPAL_ID": "sim-principal",
	}
	return &stack{t: t, s: s, env: env, cl: cl}
}

func (k *stack) publish(reqs ...payout.Request) {
	k.t.Helper()
	for i := range reqs {
		v, err := k.s.Codec.AppendRequest(nil, &reqs[i])
		if err != nil {
			k.t.Fatal(err)
		}
		if err := k.cl.ProduceSync(context.Background(), &kgo.Record{Topic: k.s.Topics.Requests, Key: []byte(reqs[i].RequestID), Value: v}).FirstErr(); err != nil {
			k.t.Fatal(err)
		}
	}
}

// run runs payoutsctl with args and returns its standard output.
func (k *stack) run(args ...string) string {
	k.t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, func(s string) (string, bool) { v, ok := k.env[s]; return v, ok }, &out, &errb)
	if code != 0 {
		k.t.Fatalf("payoutsctl %v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

// trace runs trace --output json.
func (k *stack) trace(id string, extra ...string) TraceResult {
	k.t.Helper()
	var tr TraceResult
	if err := json.Unmarshal([]byte(k.run(append([]string{"trace", id, "--output", "json"}, extra...)...)), &tr); err != nil {
		k.t.Fatal(err)
	}
	return tr
}

// waitStatus waits until the request's history holds status (a later
// status may already follow it: the tracker's first poll can move a
// SUBMITTED payout on to PENDING before the test looks).
func (k *stack) waitStatus(id string, status payout.Status) TraceResult {
	k.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tr := k.trace(id)
		for _, e := range tr.Events {
			if e.Status == string(status) {
				return tr
			}
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("%s never reached %s: %+v", id, status, tr.Events)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func request(id, account string, cents int64, legalID string) payout.Request {
	return payout.Request{RequestID: id, OriginAccountID: account, PaymentType: payout.PaymentType("PROVIDERS"),
		Beneficiary: payout.Beneficiary{LegalIDType: payout.LegalCC, LegalID: legalID, Name: "Valentina Ríos", Email: "valentina.rios@example.co",
			BankCode: "1007", AccountType: payout.AccountAhorros, AccountNumber: "31234567894"},
		AmountInCents: cents, Currency: wompi.Currency, RequestedAt: time.Now()}
}

func TestSubcommandsAgainstTheStack(t *testing.T) {
	k := startStack(t, time.Hour) // payouts stay PENDING
	okA := request("ctl-ok-a", wompitest.AccountMain, 1_250_000, "1020304050")
	okB := request("ctl-ok-b", wompitest.AccountMain, 730_000, "1122334455")
	bad := request("ctl-bad", wompitest.AccountMain, 500_000, "1098765432")
	bad.Beneficiary.AccountNumber = "0000000"
	// AccountLow holds $100,000.00: Wompi refuses this batch (EXC_008) and
	// the dispatcher keeps it deferred.
	low := request("ctl-low", wompitest.AccountLow, 50_000_000, "1030507090")
	// The Bogotá day before any batch reached the dispatcher and Wompi:
	// the reservations and Wompi's consumption are on it, or (a run that
	// crosses Bogotá midnight, 05:00 UTC) partly on the days after.
	firstDay := wompiDay(time.Now())
	k.publish(okA, okB, bad, low)

	trA := k.waitStatus(okA.RequestID, payout.StatusSubmitted)
	trB := k.waitStatus(okB.RequestID, payout.StatusSubmitted)
	// Ingest puts the two in one batch when they reach it in one window,
	// which a loaded machine does not always give.
	wantTxs, wantAmount := 2, okA.AmountInCents+okB.AmountInCents
	if trB.Events[1].BatchID != trA.Events[1].BatchID {
		wantTxs, wantAmount = 1, okA.AmountInCents
	}

	t.Run("trace of a submitted request", func(t *testing.T) {
		// SUBMITTED is produced before the batch record moves from posted
		// to done: trace again until it has.
		tr := trA
		for deadline := time.Now().Add(30 * time.Second); ; tr = k.trace(okA.RequestID) {
			done := false
			for _, f := range tr.Redis {
				if strings.HasPrefix(f.What, "batch ") && strings.HasPrefix(f.Value, "state done") {
					done = true
				}
			}
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		var statuses []string
		for _, e := range tr.Events {
			statuses = append(statuses, e.Status)
		}
		if tr.Events[0].Rail != "wompi" {
			t.Errorf("BATCHED has rail %q", tr.Events[0].Rail)
		}
		// The tracker's first poll may already have moved it on (the
		// simulator keeps payouts PENDING for an hour).
		if got := strings.Join(statuses, ","); got != "BATCHED,SUBMITTED" && got != "BATCHED,SUBMITTED,PENDING" {
			t.Fatalf("history %s, want BATCHED,SUBMITTED[,PENDING]", got)
		}
		sub := tr.Events[1]
		if sub.BatchID == "" || sub.PayoutID == "" || sub.TransactionID == "" || sub.AmountInCents != okA.AmountInCents {
			t.Fatalf("SUBMITTED event lacks its ids or amount: %+v", sub)
		}
		facts := map[string]string{}
		for _, f := range tr.Redis {
			facts[f.Owner+"/"+f.What] = f.Value
		}
		if v := facts["ingest/seen index"]; !strings.HasPrefix(v, "held by requests record ") {
			t.Errorf("seen index: %q", v)
		}
		if v := facts["dispatcher/duplicate index"]; v != "owned by batch "+sub.BatchID {
			t.Errorf("duplicate index: %q, want owned by batch %s", v, sub.BatchID)
		}
		if v := facts["dispatcher/batch "+sub.BatchID]; !strings.HasPrefix(v, "state done, payout "+sub.PayoutID) {
			t.Errorf("batch record: %q", v)
		}
		if v := facts["dispatcher→tracker/hand-off "+sub.PayoutID+"/"+sub.TransactionID]; !strings.HasPrefix(v, "request "+okA.RequestID+", batch "+sub.BatchID) {
			t.Errorf("hand-off: %q", v)
		}
		if len(tr.Provider) != 1 {
			t.Fatalf("provider: %+v, notes %v", tr.Provider, tr.Notes)
		}
		p := tr.Provider[0]
		if p.Rail != "wompi" || p.PayoutID != sub.PayoutID || p.TransactionID != sub.TransactionID || p.Reference != okA.RequestID ||
			p.PayoutReference != sub.BatchID || p.AmountInCents != okA.AmountInCents {
			t.Fatalf("provider transaction %+v does not match %+v", p, sub)
		}
	})

	t.Run("trace of a request rejected at ingest", func(t *testing.T) {
		tr := k.waitStatus(bad.RequestID, payout.StatusRejected)
		if len(tr.Events) != 1 || tr.Events[0].Source != "INGEST" || tr.Events[0].ReasonCode == "" {
			t.Fatalf("history %+v", tr.Events)
		}
		if len(tr.Provider) != 0 {
			t.Fatalf("Wompi holds a rejected request: %+v", tr.Provider)
		}
	})

	t.Run("personal data is masked unless --reveal", func(t *testing.T) {
		masked := k.run("trace", okA.RequestID)
		t.Logf("payoutsctl trace %s\n%s", okA.RequestID, masked)
		revealed := k.run("trace", okA.RequestID, "--reveal")
		for _, pii := range []string{okA.Beneficiary.LegalID, okA.Beneficiary.AccountNumber, okA.Beneficiary.Email, okA.Beneficiary.Name} {
			if strings.Contains(masked, pii) {
				t.Errorf("the table shows %q without --reveal:\n%s", pii, masked)
			}
			if !strings.Contains(revealed, pii) {
				t.Errorf("--reveal does not show %q:\n%s", pii, revealed)
			}
		}
		js := k.run("trace", okA.RequestID, "--output", "json")
		if strings.Contains(js, okA.Beneficiary.LegalID) || strings.Contains(js, okA.Beneficiary.AccountNumber) {
			t.Errorf("the JSON shows personal data without --reveal")
		}
		if !strings.Contains(masked, "****4050") || !strings.Contains(masked, "v***@example.co") {
			t.Errorf("masked values missing:\n%s", masked)
		}
		bal := k.run("balance")
		if strings.Contains(bal, "40000000001") || !strings.Contains(bal, "*******0001") {
			t.Errorf("balance shows the origin account number unmasked:\n%s", bal)
		}
	})

	t.Run("stuck lists the pending payout by age", func(t *testing.T) {
		var fresh, later StuckResult
		decode(t, k.run("stuck", "--older-than", "0s", "--output", "json"), &fresh)
		payouts := stuckPayouts(fresh)
		it, ok := payouts[trA.Events[1].PayoutID]
		if !ok {
			t.Fatalf("the pending payout %s is not listed: %+v", trA.Events[1].PayoutID, fresh.Items)
		}
		if it.Rail != "wompi" || it.BatchID != trA.Events[1].BatchID || it.OriginAccountID != wompitest.AccountMain ||
			it.Transactions != wantTxs || it.AmountInCents != wantAmount || it.Age < 0 || it.Age > time.Hour {
			t.Fatalf("stuck item %+v", it)
		}
		if it.Status != "PENDING" && it.Status != "SUBMITTED" {
			t.Fatalf("status %q", it.Status)
		}
		decode(t, k.run("stuck", "--output", "json"), &later) // default --older-than 1h
		if _, ok := stuckPayouts(later)[it.ID]; ok {
			t.Fatalf("a payout submitted seconds ago is listed as older than 1h")
		}
		// Two hours later by the tool's clock, the same payout is past 1h.
		tool := k.tool()
		res, err := toolAt(tool, time.Now().Add(2*time.Hour)).Stuck(context.Background(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := stuckPayouts(*res)[it.ID]; !ok {
			t.Fatalf("two hours later the payout is not listed: %+v", res.Items)
		}
		trLow := k.waitStatus(low.RequestID, payout.StatusDeferred)
		// The batch is deferred again and again (DEFER_BALANCE_RETRY of
		// the local run: 3s): each later attempt moves its record to
		// "posting" while it asks Wompi, and only the refusal moves it
		// back to "deferred". A DEFERRED seen says nothing of the record
		// now: ask again until stuck lists it deferred.
		var deferred *StuckItem
		for deadline := time.Now().Add(30 * time.Second); ; {
			decode(t, k.run("stuck", "--older-than", "0s", "--output", "json"), &fresh)
			deferred = nil
			for i, it := range fresh.Items {
				if it.Kind == "batch" && it.ID == trLow.Events[len(trLow.Events)-1].BatchID {
					deferred = &fresh.Items[i]
				}
			}
			if (deferred != nil && deferred.Status == "deferred") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if deferred == nil || deferred.Status != "deferred" || deferred.Rail != "wompi" || deferred.Age < 0 {
			t.Fatalf("the deferred batch is not listed as such: %+v", fresh.Items)
		}
		table := k.run("stuck", "--older-than", "0s")
		t.Logf("payoutsctl stuck --older-than 0s\n%s\npayoutsctl budget\n%s\npayoutsctl balance\n%s", table, k.run("budget"), k.run("balance"))
		if !strings.Contains(table, it.ID) || !strings.Contains(table, "wompi") {
			t.Fatalf("table:\n%s", table)
		}
	})

	t.Run("budget counts the day's reservations per account", func(t *testing.T) {
		var b BudgetResult
		before := wompiDay(time.Now())
		decode(t, k.run("budget", "--output", "json"), &b)
		after := wompiDay(time.Now())
		// Today in Bogotá when the command ran: either day of a run that
		// crossed Bogotá midnight while it ran.
		if (b.Day != before && b.Day != after) || len(b.Rails) != 1 || b.Rails[0].Rail != "wompi" {
			t.Fatalf("budget %+v, want the day %s or %s", b, before, after)
		}
		// The dispatcher reserved each batch on its Bogotá day: firstDay,
		// unless the run crossed Bogotá midnight since the requests were
		// published (then each day from firstDay on is read, and the
		// reservations are added up).
		days := []BudgetResult{b}
		if firstDay != after {
			days = nil
			for d := payout.Day(firstDay); ; d = d.Next() {
				var x BudgetResult
				decode(t, k.run("budget", "--day", d.String(), "--output", "json"), &x)
				if x.Day != d.String() || len(x.Rails) != 1 || x.Rails[0].Rail != "wompi" {
					t.Fatalf("budget of %s: %+v", d, x)
				}
				days = append(days, x)
				if d.String() == after {
					break
				}
			}
		}
		var used int64
		var batches int
		var mainSeeded, batchesSeeded bool
		for _, x := range days {
			rb := x.Rails[0]
			acc := map[string]AccountBudget{}
			for _, a := range rb.Accounts {
				acc[a.OriginAccountID] = a
			}
			main := acc[wompitest.AccountMain]
			if (main.UsedInCents != 0 && !main.Seeded) || main.LimitInCents != wompi.DefaultDailyLimitCents ||
				main.LeftInCents != wompi.DefaultDailyLimitCents-main.UsedInCents {
				t.Fatalf("main account on %s: %+v", x.Day, main)
			}
			used, mainSeeded = used+main.UsedInCents, mainSeeded || main.Seeded
			sec := acc[wompitest.AccountSecondary]
			// The local run's simulator publishes only the documented fields:
			// no per-account limits, so DAILY_LIMIT_CENTS holds.
			if sec.UsedInCents != 0 || sec.LimitInCents != wompi.DefaultDailyLimitCents || sec.LimitSource != "DAILY_LIMIT_CENTS" {
				t.Fatalf("secondary account on %s: %+v", x.Day, sec)
			}
			if (rb.BatchesUsed != 0 && !rb.BatchesSeeded) || rb.BatchesLeft != rb.BatchCap-rb.BatchesUsed {
				t.Fatalf("batches on %s: %+v", x.Day, rb)
			}
			batches, batchesSeeded = batches+rb.BatchesUsed, batchesSeeded || rb.BatchesSeeded
		}
		if !mainSeeded || used != okA.AmountInCents+okB.AmountInCents {
			t.Fatalf("main account: used %d over %s..%s (seeded %v), want %d", used, firstDay, after, mainSeeded, okA.AmountInCents+okB.AmountInCents)
		}
		if !batchesSeeded || batches < 1 {
			t.Fatalf("batches: %d over %s..%s (seeded %v)", batches, firstDay, after, batchesSeeded)
		}
		var other BudgetResult
		decode(t, k.run("budget", "--day", "2020-01-01", "--account", wompitest.AccountMain, "--output", "json"), &other)
		if a := other.Rails[0].Accounts; len(a) != 1 || a[0].Seeded || a[0].UsedInCents != 0 {
			t.Fatalf("a day with nothing: %+v", other)
		}
	})

	t.Run("balance is the simulator's", func(t *testing.T) {
		var b BalanceResult
		decode(t, k.run("balance", "--output", "json"), &b)
		after := wompiDay(time.Now())
		found := false
		for _, a := range b.Accounts {
			if a.AccountID != wompitest.AccountMain {
				continue
			}
			found = true
			want, _ := k.s.Sim.Balance(wompitest.AccountMain)
			if a.Rail != "wompi" || a.BalanceInCents != want || a.Number != "*******0001" {
				t.Fatalf("account %+v, want balance %d", a, want)
			}
		}
		if !found || len(b.Limits) != 1 {
			t.Fatalf("balance %+v", b)
		}
		// Wompi's consumption today: both batches, or (a run that crossed
		// Bogotá midnight since the requests were published: the
		// simulator counts each batch on its Bogotá day when it took it,
		// and answers for today only) those it took today, none or some.
		want := map[int64]bool{okA.AmountInCents + okB.AmountInCents: true}
		if firstDay != after {
			want[0] = true
			if wantTxs == 1 { // two batches
				want[okA.AmountInCents], want[okB.AmountInCents] = true, true
			}
		}
		if !want[b.Limits[0].DailyConsumed] {
			t.Fatalf("balance %+v: consumed %d today (%s; the requests were published on %s)", b, b.Limits[0].DailyConsumed, after, firstDay)
		}
	})
}

// TestSettledRequestIsNotStuck: once Wompi settles, trace ends in
// APPROVED (ours and the provider's) and stuck lists nothing.
func TestSettledRequestIsNotStuck(t *testing.T) {
	k := startStack(t, 200*time.Millisecond)
	r := request("ctl-settled", wompitest.AccountMain, 990_000, "1020304051")
	k.publish(r)
	tr := k.waitStatus(r.RequestID, payout.StatusApproved)
	if len(tr.Provider) != 1 || tr.Provider[0].Status != "APPROVED" {
		t.Fatalf("provider says %+v", tr.Provider)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var s StuckResult
		decode(t, k.run("stuck", "--older-than", "0s", "--output", "json"), &s)
		if len(s.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still stuck after settlement: %+v", s.Items)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := k.run("stuck", "--older-than", "0s"); !strings.Contains(out, "(none)") {
		t.Fatalf("table:\n%s", out)
	}
}

// wompiDay is the Bogotá day of t, Wompi's business day.
func wompiDay(t time.Time) string { return payout.DayIn(t, rail.Location(rail.Wompi)).String() }

func (k *stack) tool() *Tool {
	set := testConfig(k.env)
	return New(set, time.Now)
}

func toolAt(t *Tool, at time.Time) *Tool {
	return New(t.st, func() time.Time { return at })
}

func stuckPayouts(r StuckResult) map[string]StuckItem {
	m := map[string]StuckItem{}
	for _, it := range r.Items {
		if it.Kind == "payout" {
			m[it.ID] = it
		}
	}
	return m
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}

var _ = submitted.DefaultPrefix
