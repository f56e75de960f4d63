package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/hamba/avro/v2/registry"

	"github.com/wompi-payouts/pipeline/pkg/payout"
)

// Framing markers.
const (
	soeMagic0       = 0xC3
	soeMagic1       = 0x01
	soeHeaderLen    = 10
	confluentMagic  = 0x00
	confluentHdrLen = 5
)

// Limits on what a decoder allocates for a value, whatever its bytes claim.
const (
	// MaxStringBytes bounds any decoded string or map value.
	MaxStringBytes = 256 << 10
	// MaxTransactions bounds the transactions of a decoded PayoutBatch (and
	// the entries of any decoded array).
	MaxTransactions = 10_000

	defaultRegistryTimeout = 5 * time.Second
	// DefaultNotFoundRetry is how long a Confluent schema id the registry
	// answers 404 for is retried before it is taken as unknown; see
	// WithNotFoundRetry.
	DefaultNotFoundRetry = 2 * time.Minute
	// notFoundQuiet ends a spell of 404s for a schema id: after this long
	// without one, the next 404 starts a new retry bound. It is longer than
	// any backoff between two reads of the same record.
	notFoundQuiet      = 10 * time.Minute
	maxPooledWriterBuf = 1 << 20
)

// Framing is the way a value is framed on Kafka.
type Framing uint8

// The framings.
const (
	FramingSOE       Framing = iota + 1 // Avro single-object encoding: C3 01 + 8-byte LE fingerprint
	FramingConfluent                    // Confluent wire format: 00 + 4-byte BE schema id
)

// String returns "soe" or "confluent".
func (f Framing) String() string {
	switch f {
	case FramingSOE:
		return "soe"
	case FramingConfluent:
		return "confluent"
	}
	return "unknown"
}

// DetectFraming reports the framing of a value from its first bytes. It
// returns ErrTruncated for a value shorter than its header and
// ErrUnknownFraming for anything else that is neither framing.
func DetectFraming(b []byte) (Framing, error) {
	switch {
	case len(b) == 0:
		return 0, fmt.Errorf("%w: empty value", ErrTruncated)
	case b[0] == confluentMagic:
		if len(b) < confluentHdrLen {
			return 0, fmt.Errorf("%w: %d bytes, shorter than the Confluent header", ErrTruncated, len(b))
		}
		return FramingConfluent, nil
	case b[0] == soeMagic0:
		if len(b) >= 2 && b[1] != soeMagic1 {
			return 0, ErrUnknownFraming
		}
		if len(b) < soeHeaderLen {
			return 0, fmt.Errorf("%w: %d bytes, shorter than the single-object header", ErrTruncated, len(b))
		}
		return FramingSOE, nil
	}
	return 0, ErrUnknownFraming
}

// Option configures a Codec.
type Option func(*options)

type options struct {
	registryURL    string
	registryOpts   []registry.ClientFunc
	registry       registry.Registry
	topics         Topics
	timeout        time.Duration
	writerSchemas  []string
	noAutoRegister bool
	decodeOnly     bool
	notFoundRetry  time.Duration
	now            func() time.Time
}

// WithRegistry makes the Codec use the Confluent Schema Registry at url
// (SCHEMA_REGISTRY_URL): values are then encoded in the Confluent wire format.
// An empty url leaves the registry off (SOE framing), so a config value can
// be passed through as is. WithRegistryClient wins over it.
func WithRegistry(url string, opts ...registry.ClientFunc) Option {
	return func(o *options) { o.registryURL, o.registryOpts = url, opts }
}

// WithRegistryClient makes the Codec use reg as its schema registry, e.g. a
// registry.Client with auth or a custom http.Client. A Decode method tells a
// registry that cannot answer (transient) from a schema it can never read
// (permanent) by the error of reg.GetSchema: a registry.Error carries the
// HTTP status, and a transport failure must wrap a *url.Error, a net.Error,
// a context error or io.ErrUnexpectedEOF; any other error is taken as a
// schema that does not parse (ErrIncompatibleSchema, cached). WithRegistry's
// client also refuses, before parsing, a schema that is not Avro or that
// has references; reg is trusted to hand back what hamba can parse.
func WithRegistryClient(reg registry.Registry) Option {
	return func(o *options) { o.registry = reg }
}

// WithTopics sets the topics whose "<topic>-value" subjects the schemas are
// registered under. Default: DefaultTopics(). Without a registry it is unused.
func WithTopics(t Topics) Option {
	return func(o *options) { o.topics = t }
}

// WithRegistryTimeout bounds each registry call: the registrations in NewCodec
// and the fetch of an unknown schema id in a Decode method. Default 5s.
func WithRegistryTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithNotFoundRetry sets how long a Confluent schema id that the registry
// answers 404 (or another 4xx but 401, 403, 407, 408 and 429) for is
// treated as not known *yet* (a registry follower lagging behind its
// leader, an ingress answering 404 while it restarts):
// from the first 404 for the id until d has passed, a Decode method returns
// ErrSchemaNotYetFound, which is transient (Permanent is false), and asks
// the registry again on the next decode; afterwards it returns
// ErrUnknownSchema (permanent: dead-letter). Ten minutes without a 404 for
// the id end the spell: the next 404 starts a new bound. Default DefaultNotFoundRetry (2 min);
// SCHEMA_REGISTRY_NOT_FOUND_RETRY in ingest.
func WithNotFoundRetry(d time.Duration) Option {
	return func(o *options) { o.notFoundRetry = d }
}

// WithClock sets the clock the not-found bound is measured with; default
// time.Now. For tests.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithWriterSchemas calls RegisterWriterSchema for each schema at construction.
func WithWriterSchemas(schemaJSON ...string) Option {
	return func(o *options) { o.writerSchemas = append(o.writerSchemas, schemaJSON...) }
}

// WithoutAutoRegister makes NewCodec look up the ids of the current schemas
// (which CI or an operator registered) instead of registering them. NewCodec
// fails if a schema is not registered under its subject. WithDecodeOnly
// overrides it.
func WithoutAutoRegister() Option {
	return func(o *options) { o.noAutoRegister = true }
}

// WithDecodeOnly makes a Codec for a tool that only reads (payoutsctl):
// NewCodec registers nothing. With a registry it looks up the ids of the
// current schemas (POST /subjects/{subject}, a lookup), so that values
// written with them decode without a fetch and an unreachable registry
// fails NewCodec; a subject or schema the registry does not hold is no
// error, its values' ids are fetched when met, as any other writer schema.
// The Append methods return ErrDecodeOnly. It overrides
// WithoutAutoRegister.
func WithDecodeOnly() Option {
	return func(o *options) { o.decodeOnly = true }
}

// Codec encodes and decodes the pipeline's records. It is safe for concurrent
// use; create one per process.
type Codec struct {
	api      avro.API
	reg      registry.Registry
	timeout  time.Duration
	framing  Framing
	recs     [numRecords]recordCodec
	states   sync.Pool // *decodeState
	writers  sync.Pool // *avro.Writer
	regMutex sync.Mutex

	notFoundRetry time.Duration
	now           func() time.Time
	notFound      map[uint32]notFoundSpell // guarded by regMutex

	decodeOnly bool // the Append methods refuse: see WithDecodeOnly
}

// notFoundSpell is a run of 404s for one schema id.
type notFoundSpell struct{ first, last time.Time }

type recordCodec struct {
	t      RecordType
	schema avro.Schema // current schema: the writer when encoding, the reader always
	fp     uint64
	header []byte // written before each encoded value
	id     uint32 // current Confluent schema id, when hasID
	hasID  bool

	mu  sync.Mutex                             // serialises writers of soe and ids
	soe atomic.Pointer[map[uint64]avro.Schema] // other writer fingerprints → read schema
	ids atomic.Pointer[map[uint32]idEntry]     // Confluent ids → read schema or permanent error
	// writers maps each read schema of soe and ids to its writer schema
	// (checkBlocks walks a body by it).
	writers atomic.Pointer[map[avro.Schema]avro.Schema]
}

// storeWriter remembers that read schema s resolves writer schema w. The
// caller holds rc.mu.
func (rc *recordCodec) storeWriter(s, w avro.Schema) {
	m := map[avro.Schema]avro.Schema{}
	if old := rc.writers.Load(); old != nil {
		maps.Copy(m, *old)
	}
	m[s] = w
	rc.writers.Store(&m)
}

// writerOf returns the writer schema of read schema s, nil if unknown.
func (rc *recordCodec) writerOf(s avro.Schema) avro.Schema {
	if s == rc.schema {
		return s
	}
	if m := rc.writers.Load(); m != nil {
		return (*m)[s]
	}
	return nil
}

type idEntry struct {
	schema avro.Schema
	err    error
}

type decodeState struct {
	r    *avro.Reader
	meta map[string]string
}

// NewCodec builds a Codec from the embedded schemas. With a registry it
// registers (or, WithoutAutoRegister and WithDecodeOnly, looks up) the
// current schemas under their subjects, so a bad registry setting fails
// here, at start.
func NewCodec(ctx context.Context, opts ...Option) (*Codec, error) {
	o := options{topics: DefaultTopics(), timeout: defaultRegistryTimeout, notFoundRetry: DefaultNotFoundRetry, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.timeout <= 0 {
		return nil, errors.New("events: registry timeout must be positive")
	}
	if o.notFoundRetry < 0 {
		return nil, errors.New("events: the schema-not-found retry must not be negative")
	}
	parsed, err := embedded()
	if err != nil {
		return nil, err
	}
	c := &Codec{
		api: avro.Config{
			MaxByteSliceSize:  MaxStringBytes,
			MaxSliceAllocSize: MaxTransactions,
			BlockLength:       1000,
		}.Freeze(),
		timeout: o.timeout,
		framing: FramingSOE,

		notFoundRetry: o.notFoundRetry,
		now:           o.now,
		notFound:      map[uint32]notFoundSpell{},
	}
	c.states.New = func() any { return &decodeState{r: c.newReader(), meta: map[string]string{}} }
	c.writers.New = func() any { return avro.NewWriter(nil, 1024, avro.WithWriterConfig(c.api)) }

	c.reg = o.registry
	if c.reg == nil && o.registryURL != "" {
		u, err := url.Parse(o.registryURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("events: SCHEMA_REGISTRY_URL must be an http(s) URL")
		}
		hc := &http.Client{Timeout: o.timeout, Transport: schemaAnswers{next: http.DefaultTransport}}
		opts := append([]registry.ClientFunc{registry.WithHTTPClient(hc)}, o.registryOpts...)
		if c.reg, err = registry.NewClient(o.registryURL, opts...); err != nil {
			return nil, fmt.Errorf("events: SCHEMA_REGISTRY_URL: %w", err)
		}
	}

	for _, t := range Records {
		rc := &c.recs[t]
		rc.t, rc.schema, rc.fp = t, parsed[t].schema, parsed[t].fp
		rc.header = binary.LittleEndian.AppendUint64([]byte{soeMagic0, soeMagic1}, rc.fp)
	}
	if c.reg != nil {
		if err := o.topics.Validate(); err != nil {
			return nil, err
		}
		mode := registerSchemas
		switch {
		case o.decodeOnly:
			mode = lookUpKnownSchemas
		case o.noAutoRegister:
			mode = lookUpSchemas
		}
		if err := c.registerAll(ctx, o.topics, mode); err != nil {
			return nil, err
		}
		c.framing = FramingConfluent
	}
	known, err := previous()
	if err != nil {
		return nil, err
	}
	for _, js := range slices.Concat(known, o.writerSchemas) {
		if err := c.RegisterWriterSchema(js); err != nil {
			return nil, err
		}
	}
	if err := c.warmUp(); err != nil {
		return nil, err
	}
	c.decodeOnly = o.decodeOnly // after warmUp, which encodes
	return c, nil
}

func (c *Codec) newReader() *avro.Reader {
	return avro.NewReader(nil, 0, avro.WithReaderConfig(c.api))
}

// subjects returns the registry subjects of t under TopicNameStrategy.
func subjects(t RecordType, topics Topics) []string {
	switch t {
	case RecordRequest:
		return []string{topics.Requests + "-value"}
	case RecordBatch:
		return []string{topics.Batches + "-value", topics.BatchesDeferred + "-value"}
	case RecordStatusChange:
		return []string{topics.Status + "-value"}
	case RecordBatchStatusChange:
		return []string{topics.BatchStatus + "-value"}
	}
	return nil
}

// How registerAll learns the current schemas' ids.
type registerMode uint8

const (
	registerSchemas    registerMode = iota // register them (the workers' default)
	lookUpSchemas                          // look them up; one not registered fails (WithoutAutoRegister)
	lookUpKnownSchemas                     // look them up for decoding only; one not registered has no id (WithDecodeOnly)
)

func (c *Codec) registerAll(ctx context.Context, topics Topics, mode registerMode) error {
	for _, t := range Records {
		rc := &c.recs[t]
		js := Schema(t)
		for i, subject := range subjects(t, topics) {
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			var id int
			var err error
			if mode == registerSchemas {
				id, _, err = c.reg.CreateSchema(cctx, subject, js)
			} else {
				id, _, err = c.reg.IsRegistered(cctx, subject, js)
			}
			cancel()
			var re registry.Error
			if mode == lookUpKnownSchemas && errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
				continue // a reader meets no value of a schema nobody registered
			}
			if err != nil {
				return fmt.Errorf("events: schema registry (SCHEMA_REGISTRY_URL): subject %s: %w", subject, err)
			}
			if id < 0 || int64(id) > int64(^uint32(0)) {
				return fmt.Errorf("events: schema registry returned id %d for subject %s", id, subject)
			}
			if mode == lookUpKnownSchemas {
				// Known for decoding, never written: the codec does not
				// encode, so its header stays the SOE one warmUp uses.
				rc.storeID(uint32(id), idEntry{schema: rc.schema})
				continue
			}
			if i == 0 {
				rc.id, rc.hasID = uint32(id), true
				rc.header = binary.BigEndian.AppendUint32([]byte{confluentMagic}, rc.id)
			} else if uint32(id) != rc.id {
				rc.storeID(uint32(id), idEntry{schema: rc.schema})
			}
		}
	}
	return nil
}

// Framing returns the framing the Codec encodes with: FramingConfluent with a
// registry, else FramingSOE. Decoding accepts both.
func (c *Codec) Framing() Framing { return c.framing }

// SchemaID returns the Confluent schema id t is encoded with, if a registry
// is configured; never for a codec built WithDecodeOnly.
func (c *Codec) SchemaID(t RecordType) (int, bool) {
	if t >= numRecords || !c.recs[t].hasID {
		return 0, false
	}
	return int(c.recs[t].id), true
}

// RegisterWriterSchema lets the Codec decode SOE values written with another
// version of one of its records (older or newer): data is read through
// hamba's schema resolution into the current types, fields the reader lacks
// are skipped, and fields the writer lacks take their defaults. The record is
// identified by the schema's full name. It returns ErrIncompatibleSchema when
// the schemas cannot be resolved (for example a new enum symbol: our enums
// have no default on purpose, so an unknown status is never guessed).
func (c *Codec) RegisterWriterSchema(schemaJSON string) error {
	w, fp, err := parseSchema(schemaJSON)
	if err != nil {
		return fmt.Errorf("events: writer schema: %w", err)
	}
	name := w.(avro.NamedSchema).FullName()
	for _, t := range Records {
		rc := &c.recs[t]
		if t.FullName() != name {
			continue
		}
		if fp == rc.fp {
			return nil
		}
		s, err := avro.NewSchemaCompatibility().Resolve(rc.schema, w)
		if err != nil {
			return fmt.Errorf("events: writer schema %s %016x: %w: %w", name, fp, ErrIncompatibleSchema, err)
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		m := map[uint64]avro.Schema{}
		if old := rc.soe.Load(); old != nil {
			maps.Copy(m, *old)
		}
		m[fp] = s
		rc.soe.Store(&m)
		rc.storeWriter(s, w)
		return nil
	}
	return fmt.Errorf("events: writer schema %s: %w: not one of our records", name, ErrIncompatibleSchema)
}

func (rc *recordCodec) storeID(id uint32, e idEntry) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	m := map[uint32]idEntry{}
	if old := rc.ids.Load(); old != nil {
		maps.Copy(m, *old)
	}
	m[id] = e
	rc.ids.Store(&m)
}

// readSchema returns the schema to read body with, from the value's header.
func (c *Codec) readSchema(rc *recordCodec, b []byte) (avro.Schema, []byte, error) {
	f, err := DetectFraming(b)
	if err != nil {
		return nil, nil, fmt.Errorf("events: decode %s: %w", rc.t, err)
	}
	if f == FramingSOE {
		fp := binary.LittleEndian.Uint64(b[2:soeHeaderLen])
		if fp == rc.fp {
			return rc.schema, b[soeHeaderLen:], nil
		}
		if m := rc.soe.Load(); m != nil {
			if s, ok := (*m)[fp]; ok {
				return s, b[soeHeaderLen:], nil
			}
		}
		return nil, nil, fmt.Errorf("events: decode %s: %w: fingerprint %016x", rc.t, ErrUnknownSchema, fp)
	}
	id := binary.BigEndian.Uint32(b[1:confluentHdrLen])
	if rc.hasID && id == rc.id {
		return rc.schema, b[confluentHdrLen:], nil
	}
	s, err := c.schemaByID(rc, id)
	if err != nil {
		return nil, nil, err
	}
	return s, b[confluentHdrLen:], nil
}

func (c *Codec) schemaByID(rc *recordCodec, id uint32) (avro.Schema, error) {
	if m := rc.ids.Load(); m != nil {
		if e, ok := (*m)[id]; ok {
			return e.schema, e.err
		}
	}
	if c.reg == nil {
		return nil, fmt.Errorf("events: decode %s: %w: schema id %d and no schema registry configured", rc.t, ErrUnknownSchema, id)
	}
	// One fetch at a time per codec: unknown ids are rare, and this keeps a
	// burst of records with a new id from stampeding the registry.
	c.regMutex.Lock()
	defer c.regMutex.Unlock()
	if m := rc.ids.Load(); m != nil {
		if e, ok := (*m)[id]; ok {
			return e.schema, e.err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	w, err := c.reg.GetSchema(ctx, int(id))
	if err != nil {
		return nil, c.fetchFailed(rc, id, err)
	}
	delete(c.notFound, id)
	e := idEntry{}
	if e.schema, err = avro.NewSchemaCompatibility().Resolve(rc.schema, w); err != nil {
		e = idEntry{err: fmt.Errorf("events: decode %s: %w: schema id %d: %w", rc.t, ErrIncompatibleSchema, id, err)}
	} else {
		rc.mu.Lock()
		rc.storeWriter(e.schema, w)
		rc.mu.Unlock()
	}
	rc.storeID(id, e)
	return e.schema, e.err
}

// fetchFailed returns the decode error of a fetch of schema id that failed
// with err, and caches it when it is permanent. The caller holds regMutex.
//
// Only a registry that could not answer is transient (ErrRegistryUnavailable):
// a transport failure, a timeout, 5xx, 408 or 429, and 401, 403 or 407 (our
// credentials or ACLs refused). A 404 or any other 4xx is retried for
// notFoundRetry (ErrSchemaNotYetFound), then the id is unknown. A schema the registry did serve but this codec can never read
// (not Avro, Avro with references, or text hamba cannot parse) is
// ErrIncompatibleSchema: asking again would only get the same answer, and
// a transient error would block the record's partition for ever.
func (c *Codec) fetchFailed(rc *recordCodec, id uint32, err error) error {
	var unreadable *unreadableSchemaError
	var re registry.Error
	why := err.Error()
	switch {
	case errors.As(err, &unreadable):
		why = unreadable.what // without the client's wrapping, which names the URL
	case errors.As(err, &re):
		if code := re.StatusCode; code >= 500 || code < 400 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
			code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusProxyAuthRequired {
			// The registry could not answer, or not to us: our
			// credentials or ACLs, which no request can be blamed for.
			return fmt.Errorf("events: decode %s: %w: fetch schema id %d: %w", rc.t, ErrRegistryUnavailable, id, err)
		}
		// Not cached: a registry follower may lag behind its leader, an
		// ingress may refuse while it restarts. Retry for notFoundRetry
		// before calling the id unknown.
		now := c.now()
		spell, ok := c.notFound[id]
		if !ok || now.Sub(spell.last) > notFoundQuiet {
			spell.first = now
		}
		spell.last = now
		c.notFound[id] = spell
		if waited := now.Sub(spell.first); waited < c.notFoundRetry {
			return fmt.Errorf("events: decode %s: %w: schema id %d not in the registry (HTTP %d) for %v (retried up to %v)", rc.t, ErrSchemaNotYetFound, id, re.StatusCode, waited.Round(time.Millisecond), c.notFoundRetry)
		}
		return fmt.Errorf("events: decode %s: %w: schema id %d not in the registry (HTTP %d) after %v", rc.t, ErrUnknownSchema, id, re.StatusCode, c.notFoundRetry)
	case transportFailure(err):
		return fmt.Errorf("events: decode %s: %w: fetch schema id %d: %w", rc.t, ErrRegistryUnavailable, id, err)
	}
	// The registry answered, with a schema this codec can never read.
	delete(c.notFound, id)
	e := idEntry{err: fmt.Errorf("events: decode %s: %w: schema id %d is not an Avro schema this codec can read: %s", rc.t, ErrIncompatibleSchema, id, clip(why, 200))}
	rc.storeID(id, e)
	return e.err
}

// transportFailure reports whether err says the registry could not be
// reached or its answer could not be read in full.
func transportFailure(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// clip cuts s to at most n bytes: a parse error may quote a whole schema.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// unreadableSchemaError is schemaAnswers' refusal of a schema the registry
// served that this codec cannot read.
type unreadableSchemaError struct{ what string }

func (e *unreadableSchemaError) Error() string { return e.what }

// schemaAnswers is the transport of the registry client NewCodec builds.
// It checks the registry's answer to a fetch by id (GET .../schemas/ids/N)
// before hamba's client parses it, so that fetchFailed can tell an outage
// from a schema it can never read: it reads the whole body, so that a body
// cut short is a transport failure; a body that is not the registry's JSON
// (a proxy's page) is one too; and it refuses a schema whose schemaType is
// not AVRO (ids are global across the PROTOBUF, JSON and AVRO schemas of a
// shared registry) or that has references (hamba's client parses a schema
// alone).
type schemaAnswers struct{ next http.RoundTripper }

func (t schemaAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/schemas/ids/") ||
		resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the registry's answer: %w", err)
	}
	var p struct {
		Schema     *string           `json:"schema"`
		SchemaType string            `json:"schemaType"`
		References []json.RawMessage `json:"references"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Schema == nil {
		return nil, errors.New("the registry's answer is not a schema (its body is not the registry's JSON)")
	}
	switch {
	case p.SchemaType != "" && p.SchemaType != "AVRO":
		return nil, &unreadableSchemaError{what: "the registry's schema is a " + clip(p.SchemaType, 32) + " schema"}
	case len(p.References) > 0:
		return nil, &unreadableSchemaError{what: "the registry's schema is an Avro schema with references"}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// decode reads b into v (a pointer to the struct of rc), which the caller has
// reset. It never panics: a panic inside hamba becomes ErrMalformed.
func (c *Codec) decode(rc *recordCodec, st *decodeState, b []byte, v any) (err error) {
	schema, body, err := c.readSchema(rc, b)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			st.r = c.newReader() // its state is unknown; drop it
			err = fmt.Errorf("events: decode %s: %w: decoder panic", rc.t, ErrMalformed)
		}
	}()
	r := st.r
	r.Reset(body)
	r.Error = nil
	r.ReadVal(schema, v)
	if e := r.Error; e != nil {
		r.Error = nil
		r.Reset(nil)
		if errors.Is(e, io.EOF) || errors.Is(e, io.ErrUnexpectedEOF) {
			return fmt.Errorf("events: decode %s: %w: body ends inside the record", rc.t, ErrTruncated)
		}
		return fmt.Errorf("events: decode %s: %w: %w", rc.t, ErrMalformed, e)
	}
	r.Peek() // sets io.EOF at the end of the body, as it must be
	trailing := r.Error == nil
	r.Error = nil
	r.Reset(nil)
	if trailing {
		return fmt.Errorf("events: decode %s: %w: trailing bytes after the record", rc.t, ErrMalformed)
	}
	return nil
}

// encode appends the framed Avro encoding of v (a pointer to the struct of
// rc) to dst.
func (c *Codec) encode(dst []byte, rc *recordCodec, v any) (out []byte, err error) {
	w := c.writers.Get().(*avro.Writer)
	defer func() {
		if p := recover(); p != nil {
			out, err = dst, fmt.Errorf("events: encode %s: encoder panic: %v", rc.t, p)
		}
	}()
	w.Reset(nil)
	w.Error = nil
	w.WriteVal(rc.schema, v)
	if e := w.Error; e != nil {
		w.Error = nil
		c.writers.Put(w)
		return dst, fmt.Errorf("events: encode %s: %w", rc.t, e)
	}
	dst = append(dst, rc.header...)
	dst = append(dst, w.Buffer()...)
	if cap(w.Buffer()) <= maxPooledWriterBuf {
		c.writers.Put(w)
	}
	return dst, nil
}

var errNil = errors.New("events: nil record")

// AppendRequest appends the framed encoding of r to dst and returns the
// extended slice. On error dst is returned unchanged (its spare capacity
// may have been written).
func (c *Codec) AppendRequest(dst []byte, r *payout.Request) ([]byte, error) {
	if r == nil {
		return dst, errNil
	}
	if c.decodeOnly {
		return dst, ErrDecodeOnly
	}
	rc := &c.recs[RecordRequest]
	if dst == nil {
		dst = make([]byte, 0, requestSizeHint(r)+len(rc.header))
	}
	out, err := appendRequestFast(append(dst, rc.header...), r)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// requestSizeHint is a little more than r's encoding takes when it has no
// metadata: its strings, plus room for the numbers, unions and enums.
func requestSizeHint(r *payout.Request) int {
	b := &r.Beneficiary
	n := 96 + len(r.RequestID) + len(r.OriginAccountID) + len(r.Currency) + len(b.LegalID) + len(b.Name) +
		len(b.Email) + len(b.BankCode) + len(b.AccountNumber)
	for _, p := range []*string{b.BankID, b.Phone, b.PixKey, b.Branch, b.BranchDigit, b.AccountDigit, r.Rail} {
		if p != nil {
			n += len(*p) + 2
		}
	}
	return n
}

// DecodeRequest decodes a PayoutRequested value in either framing into r,
// overwriting all of r (see the package doc on aliasing). An empty metadata
// map decodes as nil.
func (c *Codec) DecodeRequest(b []byte, r *payout.Request) error {
	return c.decodeRequest(b, r, false)
}

// DecodeRequestWithoutMetadata is DecodeRequest for a reader that has no
// use for the metadata map (ingest: batches do not carry it). The map is
// still read and checked, but not built, and r.Metadata is nil.
func (c *Codec) DecodeRequestWithoutMetadata(b []byte, r *payout.Request) error {
	if err := c.decodeRequest(b, r, true); err != nil {
		return err
	}
	r.Metadata = nil
	return nil
}

func (c *Codec) decodeRequest(b []byte, r *payout.Request, skipMeta bool) error {
	if r == nil {
		return errNil
	}
	rc := &c.recs[RecordRequest]
	schema, body, err := c.readSchema(rc, b)
	if err != nil {
		// Not again in decode: each read of an unknown schema id may cost a
		// registry fetch.
		*r = payout.Request{}
		return err
	}
	if schema == rc.schema {
		*r = payout.Request{}
		if err := decodeRequestFast(body, r, skipMeta); err != nil {
			*r = payout.Request{}
			return fastErr(rc.t, err)
		}
		return nil
	}
	st := c.states.Get().(*decodeState)
	*r = payout.Request{Metadata: st.meta}
	err = c.decode(rc, st, b, r)
	switch {
	case err != nil:
		clear(st.meta)
		*r = payout.Request{}
	case len(st.meta) == 0:
		// The common case: no map is allocated at all.
		r.Metadata = nil
	default:
		// Hand the filled map over and give the pool a fresh one.
		st.meta = make(map[string]string)
	}
	c.states.Put(st)
	return err
}

// fastErr is the decode error of an error of the hand-written readers
// (fastReader): ErrTruncated when the body ended inside the record, else
// ErrMalformed.
func fastErr(t RecordType, err error) error {
	if errors.Is(err, errFastTruncated) {
		return fmt.Errorf("events: decode %s: %w: %v", t, ErrTruncated, err)
	}
	return fmt.Errorf("events: decode %s: %w: %v", t, ErrMalformed, err)
}

// AppendBatch appends the framed encoding of b to dst and returns the
// extended slice. On error dst is returned unchanged (its spare capacity
// may have been written).
func (c *Codec) AppendBatch(dst []byte, b *payout.Batch) ([]byte, error) {
	if b == nil {
		return dst, errNil
	}
	if c.decodeOnly {
		return dst, ErrDecodeOnly
	}
	rc := &c.recs[RecordBatch]
	out, err := appendBatchFast(append(dst, rc.header...), b)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// DecodeBatch decodes a PayoutBatch value into b, overwriting all of b. The
// transactions always get a fresh slice: a batch kept from an earlier decode
// is never changed.
func (c *Codec) DecodeBatch(v []byte, b *payout.Batch) error {
	if b == nil {
		return errNil
	}
	*b = payout.Batch{}
	rc := &c.recs[RecordBatch]
	schema, body, err := c.readSchema(rc, v)
	if err != nil {
		return err
	}
	if schema == rc.schema {
		if err := decodeBatchFast(body, b); err != nil {
			*b = payout.Batch{}
			return fastErr(rc.t, err)
		}
		return nil
	}
	// Another writer schema: hamba reads it once checkBlocks has (blocks.go).
	w := rc.writerOf(schema)
	if w == nil {
		return fmt.Errorf("events: decode %s: %w: no writer schema for the record's schema", rc.t, ErrMalformed)
	}
	if err := checkBlocks(w, body); err != nil {
		return fastErr(rc.t, err)
	}
	return c.decodeSimple(RecordBatch, v, b, func() { *b = payout.Batch{} })
}

// AppendStatusChange appends the framed encoding of s to dst.
func (c *Codec) AppendStatusChange(dst []byte, s *payout.StatusChange) ([]byte, error) {
	if s == nil {
		return dst, errNil
	}
	if c.decodeOnly {
		return dst, ErrDecodeOnly
	}
	rc := &c.recs[RecordStatusChange]
	if dst == nil {
		// One allocation of about the event's size, not one per doubling.
		dst = make([]byte, 0, statusChangeSizeHint(s)+len(rc.header))
	}
	out, err := appendStatusChangeFast(append(dst, rc.header...), s)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// statusChangeSizeHint is a little more than s's encoding takes: its
// strings, plus room for the numbers, the unions and the enums.
func statusChangeSizeHint(s *payout.StatusChange) int {
	n := 96 + len(s.EventID) + len(s.RequestID) + len(s.OriginAccountID)
	for _, p := range []*string{s.BatchID, s.PayoutID, s.TransactionID, s.ReasonCode, s.ReasonMessage, s.Rail} {
		if p != nil {
			n += len(*p) + 2
		}
	}
	return n
}

// DecodeStatusChange decodes a PayoutStatusChanged value into s, overwriting
// all of s.
func (c *Codec) DecodeStatusChange(v []byte, s *payout.StatusChange) error {
	if s == nil {
		return errNil
	}
	*s = payout.StatusChange{}
	rc := &c.recs[RecordStatusChange]
	schema, body, err := c.readSchema(rc, v)
	if err != nil {
		return err
	}
	if schema != rc.schema {
		return c.decodeSimple(RecordStatusChange, v, s, func() { *s = payout.StatusChange{} })
	}
	if err := decodeStatusChangeFast(body, s); err != nil {
		*s = payout.StatusChange{}
		return fastErr(rc.t, err)
	}
	return nil
}

// AppendBatchStatusChange appends the framed encoding of s to dst.
func (c *Codec) AppendBatchStatusChange(dst []byte, s *payout.BatchStatusChange) ([]byte, error) {
	if s == nil {
		return dst, errNil
	}
	if c.decodeOnly {
		return dst, ErrDecodeOnly
	}
	return c.encode(dst, &c.recs[RecordBatchStatusChange], s)
}

// DecodeBatchStatusChange decodes a BatchStatusChanged value into s,
// overwriting all of s.
func (c *Codec) DecodeBatchStatusChange(v []byte, s *payout.BatchStatusChange) error {
	if s == nil {
		return errNil
	}
	*s = payout.BatchStatusChange{}
	return c.decodeSimple(RecordBatchStatusChange, v, s, func() { *s = payout.BatchStatusChange{} })
}

func (c *Codec) decodeSimple(t RecordType, b []byte, v any, reset func()) error {
	st := c.states.Get().(*decodeState)
	err := c.decode(&c.recs[t], st, b, v)
	c.states.Put(st)
	if err != nil {
		reset()
	}
	return err
}

// warmUp round-trips one value of each record, which builds hamba's cached
// encoders and decoders and fails fast if a payout type no longer matches
// its schema.
func (c *Codec) warmUp() error {
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	ben := payout.Beneficiary{LegalIDType: payout.LegalCC, AccountType: payout.AccountAhorros}
	var buf []byte
	var err error
	req := payout.Request{PaymentType: payout.PaymentOther, Beneficiary: ben, RequestedAt: now, Metadata: map[string]string{"k": "v"}}
	if buf, err = c.AppendRequest(buf[:0], &req); err == nil {
		err = c.DecodeRequest(buf, &req)
	}
	if err != nil {
		return fmt.Errorf("events: warm-up: %w", err)
	}
	batch := payout.Batch{PaymentType: payout.PaymentOther, Transactions: []payout.Transaction{{Beneficiary: ben}}, CreatedAt: now}
	if buf, err = c.AppendBatch(buf[:0], &batch); err == nil {
		err = c.DecodeBatch(buf, &batch)
	}
	if err != nil {
		return fmt.Errorf("events: warm-up: %w", err)
	}
	sc := payout.StatusChange{Status: payout.StatusBatched, Source: payout.SourceIngest, OccurredAt: now}
	if buf, err = c.AppendStatusChange(buf[:0], &sc); err == nil {
		err = c.DecodeStatusChange(buf, &sc)
	}
	if err != nil {
		return fmt.Errorf("events: warm-up: %w", err)
	}
	bsc := payout.BatchStatusChange{PaymentType: payout.PaymentOther, Status: payout.BatchPending, Source: payout.SourceDispatcher, OccurredAt: now}
	if buf, err = c.AppendBatchStatusChange(buf[:0], &bsc); err == nil {
		err = c.DecodeBatchStatusChange(buf, &bsc)
	}
	if err != nil {
		return fmt.Errorf("events: warm-up: %w", err)
	}
	return nil
}
