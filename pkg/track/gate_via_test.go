package track

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
	"github.com/wompi-payouts/pipeline/pkg/testenv"
)

// An item with a Via (the dispatcher's SUBMITTED then PENDING) is granted
// only where its Via may follow: not after a confirmed SUBMITTED or
// PENDING, not after a PENDING attempt whose lease ran out (it may be on
// the topic), and not after its own attempt abandoned at PENDING; abandoned
// at its Via (only the SUBMITTED may have gone out) it is granted again. On
// one Redis and key by key (a Cluster's path, one key per script call).
func TestGateViaItems(t *testing.T) {
	for _, chunk := range []int{manyChunk, 1} {
		t.Run(fmt.Sprint("chunk=", chunk), func(t *testing.T) {
			rs := testenv.Redis(t)
			ctx := context.Background()
			g := NewGate(rs.Client(), rs.Prefix(), 300*time.Millisecond)
			g.s.chunk = chunk
			since, err := g.Epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := func(name string) string { return fmt.Sprint(name, "-", chunk) }
			via := func(name string) GateItem {
				return GateItem{ID: id(name), To: string(payout.StatusPending), Via: string(payout.StatusSubmitted), Ref: "tx-" + name}
			}
			plain := func(name string, to payout.Status) GateItem {
				return GateItem{ID: id(name), To: string(to), Ref: "tx-" + name}
			}
			begin := func(items ...GateItem) *GateTicket {
				t.Helper()
				tk, err := g.Begin(ctx, since, items)
				if err != nil {
					t.Fatal(err)
				}
				return tk
			}
			end := func(tk *GateTicket, how GateEnd) {
				t.Helper()
				if err := g.EndAs(ctx, tk, func(int) GateEnd { return how }); err != nil {
					t.Fatal(err)
				}
			}
			// Confirmed SUBMITTED, confirmed PENDING: a Via item follows neither.
			end(begin(plain("sub", payout.StatusSubmitted)), GateWritten)
			end(begin(plain("pend", payout.StatusPending)), GateWritten)
			// A PENDING attempt left to its lease (perhaps on the topic).
			g.Leave(begin(plain("left", payout.StatusPending)))
			// Via items abandoned at PENDING (the PENDING failed) and at
			// SUBMITTED (the PENDING was never sent).
			end(begin(via("failed")), GateFailed)
			end(begin(via("unsent")), GateViaOnly)
			time.Sleep(600 * time.Millisecond)

			tk := begin(via("sub"), via("pend"), via("left"), via("failed"), via("unsent"), via("fresh"))
			want := []GateVerdict{GateSkip, GateSkip, GateSkip, GateSkip, GateOurs, GateOurs}
			for i, v := range tk.Verdicts {
				if v != want[i] {
					t.Errorf("%s: verdict %v, want %v", tk.items[i].ID, v, want[i])
				}
			}
			end(tk, GateFailed)
			// The tracker's own PENDING still follows an attempt abandoned
			// at PENDING, and APPROVED a confirmed PENDING.
			tr := begin(plain("failed", payout.StatusPending), plain("pend", payout.StatusApproved))
			if tr.Verdicts[0] != GateOurs || tr.Verdicts[1] != GateOurs || tr.Previous[1] != string(payout.StatusPending) {
				t.Fatalf("tracker after the Via items: %v, previous %v", tr.Verdicts, tr.Previous)
			}
			end(tr, GateWritten)
		})
	}
}

// An end result "at:" with no status abandons the attempt at its own
// status: it never erases the floor an abandoned attempt leaves.
func TestEndAtNothingKeepsTheFloor(t *testing.T) {
	rs := testenv.Redis(t)
	ctx := context.Background()
	s := newStatusStore(rs.Client(), rs.Prefix(), time.Hour, time.Minute)
	since, err := s.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending := transition{kind: kindRequest, id: "r-at", to: string(payout.StatusPending), ref: "tx-at", verified: true, since: since}
	if out, _, err := s.begin(ctx, pending, "tok-at"); err != nil || out != outcomeOK {
		t.Fatalf("begin: %s %v", out, err)
	}
	if err := s.endManyAs(ctx, []transition{pending}, []string{"tok-at"}, []string{"at:"}); err != nil {
		t.Fatal(err)
	}
	sub := transition{kind: kindRequest, id: "r-at", to: string(payout.StatusSubmitted), ref: "tx-at", verified: true, since: since}
	if out, _, err := s.begin(ctx, sub, "tok-sub"); err != nil || out != outcomeStale {
		t.Fatalf("SUBMITTED after PENDING abandoned by \"at:\": %s %v, want stale", out, err)
	}
}
