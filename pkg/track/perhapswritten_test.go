package track

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// A produce failed by the producer's close (a shutdown while Kafka is
// slow) may still have sent its record: the attempt is left to its lease,
// never abandoned. Abandoned, the key is free at once, and another replica
// may emit a status that the record, landing late, then follows on the
// topic; until the lease runs out, another attempt is answered busy. A
// webhook's produce (one transition) and a poll's (emitRequests) alike.
func TestProduceFailedByTheCloseKeepsItsLease(t *testing.T) {
	for _, how := range []string{"webhook", "poll"} {
		t.Run(how, func(t *testing.T) { produceFailedByTheClose(t, how == "poll") })
	}
}

func produceFailedByTheClose(t *testing.T, poll bool) {
	f := newFixture(t, fixtureOpts{})
	addr := "127.0.0.1:" + itoa(mustFreePort(t)) // Kafka never answers
	e, srv := f.engine(func(c *Config) {
		c.Kafka = kafkaOpts(addr)
		c.ProduceTimeout = time.Minute
		c.Lease = 2 * time.Minute
	})
	ctx := context.Background()
	c := f.submit(true, f.payee("1234567007"))
	tx := c.txs[0]
	body, sum := txWebhook(t, f.sim.Config().EventsSecret, tx.ID, c.payoutID, tx.AmountInCents, "FAILED",
		map[string]string{"code": "D07", "message": "Account number does not exist"}, t0)
	answered := make(chan int, 1)
	if poll {
		// The schedule is ready: its rebuild reads Kafka, which never
		// answers here. Every webhook lost; the poll reads the settled
		// transaction.
		if err := f.sub.MarkReady(ctx); err != nil {
			t.Fatal(err)
		}
		f.sim.SettleAll()
		f.clock.Advance(time.Minute)
		go func() {
			res, err := e.PollOnce(ctx)
			t.Logf("poll: %+v %v", res, err)
			answered <- http.StatusServiceUnavailable
		}()
	} else {
		go func() { answered <- post(t, srv.URL, body, sum) }()
	}
	key := e.statuses.key(kindRequest, tx.Reference)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := readStatusKey(ctx, f.redis.Client(), key)
		if err != nil {
			t.Fatal(err)
		}
		if v.fl == string(payout.StatusFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook's attempt never held %s: %+v", key, v)
		}
	}
	e.producer.Close() // the record fails with kgo.ErrClientClosed
	select {
	case code := <-answered:
		if code != http.StatusServiceUnavailable {
			t.Fatalf("webhook answered %d, want 503", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the webhook (or poll) did not end after the producer closed")
	}
	v, err := readStatusKey(ctx, f.redis.Client(), key)
	if err != nil {
		t.Fatal(err)
	}
	if v.st != "" || v.fl != string(payout.StatusFailed) || v.fle == "0" {
		t.Errorf("status key after a produce perhaps sent: %+v, want its attempt still live (not confirmed, not abandoned)", v)
	}
	out, _, err := e.statuses.begin(ctx, transition{kind: kindRequest, id: tx.Reference, to: string(payout.StatusFailed),
		ref: tx.ID, final: true, verified: true, since: mustEpoch(t, e.statuses)}, newToken())
	if err != nil {
		t.Fatal(err)
	}
	if out != outcomeBusy {
		t.Errorf("another attempt while the record may still land: %q, want busy", out)
	}
}
