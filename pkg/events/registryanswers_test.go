package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wompi-payouts/pipeline/pkg/events/registrytest"
	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// faultyRegistry is a registrytest registry whose answers to fetches of a
// schema by id (GET /schemas/ids/{id}) a test can replace.
type faultyRegistry struct {
	*registrytest.Server
	byID    atomic.Pointer[http.HandlerFunc] // nil: the registry answers
	faulted atomic.Int32                     // fetches byID answered
}

func newFaultyRegistry(t *testing.T) *faultyRegistry {
	t.Helper()
	f := &faultyRegistry{}
	reg := registrytest.New()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if h := f.byID.Load(); h != nil && req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/schemas/ids/") {
			f.faulted.Add(1)
			(*h)(w, req)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(ts.Close)
	f.Server = &registrytest.Server{Server: ts, Registry: reg}
	return f
}

func (f *faultyRegistry) answer(h http.HandlerFunc) { f.byID.Store(&h) }
func (f *faultyRegistry) heal()                     { f.byID.Store(nil) }

// serve returns a handler that answers 200 with body.
func serve(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		_, _ = w.Write([]byte(body))
	}
}

// status returns a handler that answers code with the registry's error JSON.
func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `{"error_code":%d01,"message":"injected"}`, code)
	}
}

// cut returns a handler that starts a 200 answer and drops the connection
// inside the body: with a Content-Length (the client sees the body end
// early) or without one (the end of the connection ends the body, which
// then looks complete to a streaming JSON reader).
func cut(withLength bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		head := "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nConnection: close\r\n"
		if withLength {
			head += "Content-Length: 400\r\n"
		}
		_, _ = buf.WriteString(head + "\r\n" + `{"schema":"{\"type\":\"record\",\"name\":\"com.wom`)
		_ = buf.Flush()
	}
}

// A Confluent schema id whose schema the registry serves but this codec can
// never read: a PROTOBUF or JSON schema (ids are global across schema types
// in a shared registry), an Avro schema with references, or Avro text that
// does not parse alone. The decode error wrapped the parse failure as
// ErrRegistryUnavailable: transient, never cached, so ingest re-read the
// record's window for ever and its partition stopped. It is now
// ErrIncompatibleSchema, permanent (the DLQ), and the answer is cached: the
// id is fetched once.
func TestSchemaTheRegistryServesButNoCodecCanReadIsPermanent(t *testing.T) {
	const protobuf = `syntax = \"proto3\";\nmessage Payout { string id = 1; }\n`
	for _, tc := range []struct {
		name, body, want string
	}{
		{"protobuf", `{"schemaType":"PROTOBUF","schema":"` + protobuf + `"}`, "PROTOBUF"},
		{"json schema", `{"schemaType":"JSON","schema":"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"}}}"}`, "JSON"},
		{"avro with references", `{"schema":"{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"m\",\"type\":\"com.acme.Money\"}]}",` +
			`"references":[{"name":"com.acme.Money","subject":"money-value","version":1}]}`, "references"},
		{"avro that does not parse", `{"schema":"{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"m\",\"type\":\"com.acme.Money\"}]}"}`, "com.acme.Money"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newFaultyRegistry(t)
			c, err := NewCodec(context.Background(), WithRegistry(reg.URL), WithNotFoundRetry(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			reg.answer(serve(tc.body))
			v := append([]byte{0, 0, 0, 0x27, 0x0f}, 0x0a, 0x03, 'a', 'b', 'c') // id 9999, a protobuf body
			var r payout.Request
			for i := range 2 {
				err := c.DecodeRequest(v, &r)
				if !errors.Is(err, ErrIncompatibleSchema) || !Permanent(err) {
					t.Fatalf("decode %d: %v, want a permanent ErrIncompatibleSchema", i, err)
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "schema id 9999") {
					t.Errorf("decode %d: %q does not say what the schema is", i, err)
				}
			}
			if n := reg.faulted.Load(); n != 1 {
				t.Errorf("the id was fetched %d times, want once", n)
			}
		})
	}
}

// A registry that cannot answer must stall the record, never dead-letter
// it: 5xx, 408, 429, 401 and 403 (our credentials refused), a timeout, a refused connection, an answer cut short
// (with or without a Content-Length) and a 200 whose body is not the
// registry's JSON (a proxy's page) are each ErrRegistryUnavailable, not
// cached, and once the registry answers again the same value decodes.
// Without the checks of the client's transport, a body cut short where the
// connection's end ends it reached the Avro parser as a schema that does
// not parse, and a proxy's 200 page too: both were dead-lettered.
func TestRegistryThatCannotAnswerStaysTransient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault http.HandlerFunc
	}{
		{"500", status(http.StatusInternalServerError)},
		{"503", status(http.StatusServiceUnavailable)},
		{"408", status(http.StatusRequestTimeout)},
		{"429", status(http.StatusTooManyRequests)},
		{"401", status(http.StatusUnauthorized)},
		{"403", status(http.StatusForbidden)},
		{"timeout", func(w http.ResponseWriter, req *http.Request) {
			<-req.Context().Done() // past the codec's timeout, however late it runs
		}},
		{"body cut short", cut(true)},
		{"body cut short without a length", cut(false)},
		{"not the registry's JSON", serve("<html><body>maintenance</body></html>")},
		{"empty 200", serve("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newFaultyRegistry(t)
			// The timeout bounds each registry call of the codec, the ones
			// that must succeed as well (NewCodec's registrations, the
			// decode once healed): long but where the fault is the timeout
			// itself (at 300ms for all, a registration that came late on a
			// loaded box failed).
			timeout := 30 * time.Second
			if tc.name == "timeout" {
				timeout = 3 * time.Second
			}
			c, err := NewCodec(context.Background(), WithRegistry(reg.URL), WithRegistryTimeout(timeout), WithNotFoundRetry(0))
			if err != nil {
				t.Fatal(err)
			}
			want := fullRequest()
			v := laggingValue(t, c, reg.Server, want)
			reg.answer(tc.fault)
			var got payout.Request
			for i := range 2 {
				if err := c.DecodeRequest(v, &got); !errors.Is(err, ErrRegistryUnavailable) || Permanent(err) {
					t.Fatalf("decode %d: %v, want a transient ErrRegistryUnavailable", i, err)
				}
			}
			if n := reg.faulted.Load(); n != 2 {
				t.Errorf("the id was fetched %d times, want once per decode (2)", n)
			}
			reg.heal()
			if err := c.DecodeRequest(v, &got); err != nil {
				t.Fatalf("after the registry answers again: %v", err)
			}
			if got.RequestID != want.RequestID || got.AmountInCents != want.AmountInCents {
				t.Fatalf("decoded %+v", got)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		reg := newFaultyRegistry(t)
		c, err := NewCodec(context.Background(), WithRegistry(reg.URL), WithNotFoundRetry(0))
		if err != nil {
			t.Fatal(err)
		}
		v := laggingValue(t, c, reg.Server, fullRequest())
		reg.Close()
		var got payout.Request
		if err := c.DecodeRequest(v, &got); !errors.Is(err, ErrRegistryUnavailable) || Permanent(err) {
			t.Fatalf("registry gone: %v, want a transient ErrRegistryUnavailable", err)
		}
	})
}

// A 4xx other than 401, 403, 407, 408 and 429 (here 400 and 422) follows the 404 rule:
// transient for the not-found retry, then ErrUnknownSchema (the DLQ). They
// were ErrRegistryUnavailable, retried without a bound.
func TestOther4xxAreRetriedForTheNotFoundBound(t *testing.T) {
	for _, code := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			reg := newFaultyRegistry(t)
			c, err := NewCodec(context.Background(), WithRegistry(reg.URL), WithNotFoundRetry(time.Minute), WithClock(clock.now))
			if err != nil {
				t.Fatal(err)
			}
			v := laggingValue(t, c, reg.Server, fullRequest())
			reg.answer(status(code))
			var got payout.Request
			if err := c.DecodeRequest(v, &got); !errors.Is(err, ErrSchemaNotYetFound) || Permanent(err) {
				t.Fatalf("first answer: %v, want a transient ErrSchemaNotYetFound", err)
			}
			clock.add(61 * time.Second)
			if err := c.DecodeRequest(v, &got); !errors.Is(err, ErrUnknownSchema) || !Permanent(err) {
				t.Fatalf("past the bound: %v, want a permanent ErrUnknownSchema", err)
			}
		})
	}
}

// payoutsctl only reads, but its codec registered every schema under five
// subjects at start: a read-only command wrote to a shared registry (and
// created the subjects of topics nobody had written to yet). A codec built
// WithDecodeOnly registers nothing: it looks the current schemas up, decodes
// every record written with them without a fetch, fetches a newer writer
// schema by id, starts against a registry that holds none of its subjects,
// and refuses to encode.
func TestDecodeOnlyCodecRegistersNothing(t *testing.T) {
	writer, srv := newRegistryCodec(t)
	var values [][]byte
	for _, tc := range allCases() {
		b, err := tc.encode(writer, nil)
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, b)
	}
	newer := fullRequest()
	lagging := laggingValue(t, writer, srv, newer)
	const register = "POST /subjects/{subject}/versions"
	registered := srv.Calls(register)

	c, err := NewCodec(context.Background(), WithRegistry(srv.URL), WithDecodeOnly())
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range allCases() {
		got, err := tc.decode(c, values[i])
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: decoded %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if n := srv.Calls("GET /schemas/ids/{id}"); n != 0 {
		t.Errorf("%d fetches by id for values of the current schemas, want none", n)
	}
	var r payout.Request
	if err := c.DecodeRequest(lagging, &r); err != nil || r.RequestID != newer.RequestID {
		t.Fatalf("a newer writer schema: %v", err)
	}
	if n := srv.Calls(register); n != registered {
		t.Errorf("the decode-only codec registered %d schemas", n-registered)
	}
	if _, err := c.AppendRequest(nil, minimalRequest()); !errors.Is(err, ErrDecodeOnly) {
		t.Errorf("AppendRequest: %v, want ErrDecodeOnly", err)
	}
	if _, err := c.AppendBatch(nil, minimalBatch()); !errors.Is(err, ErrDecodeOnly) {
		t.Errorf("AppendBatch: %v, want ErrDecodeOnly", err)
	}
	if _, err := c.AppendStatusChange(nil, minimalStatusChange()); !errors.Is(err, ErrDecodeOnly) {
		t.Errorf("AppendStatusChange: %v, want ErrDecodeOnly", err)
	}
	if _, err := c.AppendBatchStatusChange(nil, minimalBatchStatusChange()); !errors.Is(err, ErrDecodeOnly) {
		t.Errorf("AppendBatchStatusChange: %v, want ErrDecodeOnly", err)
	}

	// A registry nobody has written to yet stays empty.
	empty := registrytest.NewServer()
	t.Cleanup(empty.Close)
	if _, err := NewCodec(context.Background(), WithRegistry(empty.URL), WithDecodeOnly()); err != nil {
		t.Fatalf("empty registry: %v", err)
	}
	if n := empty.Calls(register); n != 0 {
		t.Errorf("%d registrations in an empty registry", n)
	}
	// An unreachable registry still fails at start, as for the workers.
	empty.FailWith(http.StatusServiceUnavailable)
	if _, err := NewCodec(context.Background(), WithRegistry(empty.URL), WithDecodeOnly()); err == nil || !strings.Contains(err.Error(), "SCHEMA_REGISTRY_URL") {
		t.Fatalf("registry down at start: %v", err)
	}
}
