// Package registrytest is a small in-memory Confluent-compatible Schema
// Registry for tests and the one-command local run. It serves what
// hamba/avro's registry client calls: registering and looking up schemas
// under subjects, fetching schemas by id, listing subjects and versions,
// compatibility checks and the compatibility config. Identical schemas (by
// Avro canonical form) share one id across subjects, as in Confluent's.
// Registration checks that the new schema can read the subject's latest one
// (a BACKWARD check, applied for every level but NONE), so an incompatible
// change fails here as it would in production.
package registrytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"

	"github.com/hamba/avro/v2"
)

const contentType = "application/vnd.schemaregistry.v1+json"

// Registry is the in-memory registry state and its http.Handler.
type Registry struct {
	mux *http.ServeMux

	mu       sync.Mutex
	schemas  []string       // id-1 -> schema text as first registered
	parsed   []avro.Schema  // id-1 -> parsed schema
	byCanon  map[string]int // canonical form -> id
	subjects map[string][]int
	global   string
	levels   map[string]string
	fail     int            // when non-zero, every request answers this status
	lag      int            // fetches by id still to answer 404 (a lagging follower)
	calls    map[string]int // "METHOD /pattern" -> count
}

// New returns an empty registry.
func New() *Registry {
	r := &Registry{
		byCanon:  map[string]int{},
		subjects: map[string][]int{},
		global:   "BACKWARD",
		levels:   map[string]string{},
		calls:    map[string]int{},
	}
	m := http.NewServeMux()
	route := func(pattern string, h func(http.ResponseWriter, *http.Request)) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, req *http.Request) {
			r.mu.Lock()
			r.calls[pattern]++
			fail := r.fail
			r.mu.Unlock()
			if fail != 0 {
				writeErr(w, fail, fail*100, "injected failure")
				return
			}
			h(w, req)
		})
	}
	route("POST /subjects/{subject}/versions", r.register)
	route("POST /subjects/{subject}", r.lookup)
	route("GET /subjects", r.listSubjects)
	route("GET /subjects/{subject}/versions", r.listVersions)
	route("GET /subjects/{subject}/versions/{version}", r.getVersion)
	route("DELETE /subjects/{subject}", r.deleteSubject)
	route("GET /schemas/ids/{id}", r.getByID)
	route("POST /compatibility/subjects/{subject}/versions", r.compatible)
	route("POST /compatibility/subjects/{subject}/versions/{version}", r.compatible)
	route("GET /config", r.getConfig)
	route("PUT /config", r.putConfig)
	route("GET /config/{subject}", r.getConfig)
	route("PUT /config/{subject}", r.putConfig)
	r.mux = m
	return r
}

// ServeHTTP serves the registry API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// Server is a Registry behind an httptest.Server; URL is its base URL.
type Server struct {
	*httptest.Server
	*Registry
}

// NewServer starts a registry on a loopback port. Close it when done.
func NewServer() *Server {
	r := New()
	return &Server{Server: httptest.NewServer(r), Registry: r}
}

// Close stops the server.
func (s *Server) Close() { s.Server.Close() }

// FailWith makes every request answer the HTTP status (e.g. 503) until it is
// called with 0, to test how clients handle an unavailable registry.
func (r *Registry) FailWith(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = status
}

// LagIDs makes the next n fetches of a schema by id (GET /schemas/ids/{id})
// answer 404 even for a known id, as a registry follower that has not yet
// caught up with its leader does. n < 0 lags until LagIDs(0).
func (r *Registry) LagIDs(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lag = n
}

// Calls returns how many requests matched the route pattern, e.g.
// "GET /schemas/ids/{id}".
func (r *Registry) Calls(pattern string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[pattern]
}

// Register registers schema under subject, as POST
// /subjects/{subject}/versions does, and returns its id.
func (r *Registry) Register(subject, schema string) (int, error) {
	id, status, err := r.registerLocked(subject, schema)
	if err != nil {
		return 0, fmt.Errorf("registrytest: %d: %w", status, err)
	}
	return id, nil
}

func (r *Registry) registerLocked(subject, schema string) (int, int, error) {
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	if err != nil {
		return 0, http.StatusUnprocessableEntity, fmt.Errorf("invalid schema: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	canon := s.String()
	id, known := r.byCanon[canon]
	versions := r.subjects[subject]
	if known && slices.Contains(versions, id) {
		return id, 0, nil
	}
	if len(versions) > 0 && r.levelLocked(subject) != "NONE" {
		latest := r.parsed[versions[len(versions)-1]-1]
		if err := avro.NewSchemaCompatibility().Compatible(s, latest); err != nil {
			return 0, http.StatusConflict, fmt.Errorf("schema being registered is incompatible with an earlier schema: %w", err)
		}
	}
	if !known {
		r.schemas = append(r.schemas, schema)
		r.parsed = append(r.parsed, s)
		id = len(r.schemas)
		r.byCanon[canon] = id
	}
	r.subjects[subject] = append(versions, id)
	return id, 0, nil
}

func (r *Registry) levelLocked(subject string) string {
	if l, ok := r.levels[subject]; ok {
		return l
	}
	return r.global
}

type schemaBody struct {
	Schema     string `json:"schema"`
	SchemaType string `json:"schemaType,omitempty"`
}

func readBody(w http.ResponseWriter, req *http.Request) (schemaBody, bool) {
	var b schemaBody
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&b); err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "invalid request body")
		return b, false
	}
	if b.SchemaType != "" && b.SchemaType != "AVRO" {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "only AVRO schemas are supported")
		return b, false
	}
	return b, true
}

func (r *Registry) register(w http.ResponseWriter, req *http.Request) {
	b, ok := readBody(w, req)
	if !ok {
		return
	}
	id, status, err := r.registerLocked(req.PathValue("subject"), b.Schema)
	if err != nil {
		code := status
		if status == http.StatusUnprocessableEntity {
			code = 42201
		}
		writeErr(w, status, code, err.Error())
		return
	}
	writeJSON(w, map[string]int{"id": id})
}

func (r *Registry) lookup(w http.ResponseWriter, req *http.Request) {
	b, ok := readBody(w, req)
	if !ok {
		return
	}
	s, err := avro.ParseWithCache(b.Schema, "", &avro.SchemaCache{})
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "invalid schema")
		return
	}
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	versions, ok := r.subjects[subject]
	if !ok {
		writeErr(w, http.StatusNotFound, 40401, "subject not found")
		return
	}
	id, known := r.byCanon[s.String()]
	v := slices.Index(versions, id)
	if !known || v < 0 {
		writeErr(w, http.StatusNotFound, 40403, "schema not found")
		return
	}
	writeJSON(w, map[string]any{"subject": subject, "id": id, "version": v + 1, "schema": r.schemas[id-1]})
}

func (r *Registry) listSubjects(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.subjects))
	for s := range r.subjects {
		out = append(out, s)
	}
	slices.Sort(out)
	writeJSON(w, out)
}

func (r *Registry) listVersions(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	versions, ok := r.subjects[req.PathValue("subject")]
	if !ok {
		writeErr(w, http.StatusNotFound, 40401, "subject not found")
		return
	}
	out := make([]int, len(versions))
	for i := range versions {
		out[i] = i + 1
	}
	writeJSON(w, out)
}

func (r *Registry) getVersion(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	versions, ok := r.subjects[subject]
	if !ok {
		writeErr(w, http.StatusNotFound, 40401, "subject not found")
		return
	}
	v := len(versions)
	if s := req.PathValue("version"); s != "latest" && s != "-1" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > len(versions) {
			writeErr(w, http.StatusNotFound, 40402, "version not found")
			return
		}
		v = n
	}
	id := versions[v-1]
	writeJSON(w, map[string]any{"subject": subject, "id": id, "version": v, "schema": r.schemas[id-1]})
}

func (r *Registry) deleteSubject(w http.ResponseWriter, req *http.Request) {
	subject := req.PathValue("subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	versions, ok := r.subjects[subject]
	if !ok {
		writeErr(w, http.StatusNotFound, 40401, "subject not found")
		return
	}
	delete(r.subjects, subject) // ids stay fetchable, as after a soft delete
	out := make([]int, len(versions))
	for i := range versions {
		out[i] = i + 1
	}
	writeJSON(w, out)
}

func (r *Registry) getByID(w http.ResponseWriter, req *http.Request) {
	id, err := strconv.Atoi(req.PathValue("id"))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lag != 0 {
		if r.lag > 0 {
			r.lag--
		}
		writeErr(w, http.StatusNotFound, 40403, "schema not found")
		return
	}
	if err != nil || id < 1 || id > len(r.schemas) {
		writeErr(w, http.StatusNotFound, 40403, "schema not found")
		return
	}
	writeJSON(w, map[string]string{"schema": r.schemas[id-1]})
}

func (r *Registry) compatible(w http.ResponseWriter, req *http.Request) {
	b, ok := readBody(w, req)
	if !ok {
		return
	}
	s, err := avro.ParseWithCache(b.Schema, "", &avro.SchemaCache{})
	if err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42201, "invalid schema")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ok = true
	for _, id := range r.subjects[req.PathValue("subject")] {
		if avro.NewSchemaCompatibility().Compatible(s, r.parsed[id-1]) != nil {
			ok = false
		}
	}
	writeJSON(w, map[string]bool{"is_compatible": ok})
}

func (r *Registry) getConfig(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lvl := r.global
	if s := req.PathValue("subject"); s != "" {
		lvl = r.levelLocked(s)
	}
	writeJSON(w, map[string]string{"compatibilityLevel": lvl, "compatibility": lvl})
}

func (r *Registry) putConfig(w http.ResponseWriter, req *http.Request) {
	var b struct {
		Compatibility string `json:"compatibility"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<16)).Decode(&b); err != nil {
		writeErr(w, http.StatusUnprocessableEntity, 42203, "invalid compatibility level")
		return
	}
	switch b.Compatibility {
	case "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE":
	default:
		writeErr(w, http.StatusUnprocessableEntity, 42203, "invalid compatibility level")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := req.PathValue("subject"); s != "" {
		r.levels[s] = b.Compatibility
	} else {
		r.global = b.Compatibility
	}
	writeJSON(w, map[string]string{"compatibility": b.Compatibility})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", contentType)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": msg})
}
