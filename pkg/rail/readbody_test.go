package rail

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"testing/iotest"
)

// readAllLimited is what ReadBody replaces: io.ReadAll of an
// io.LimitReader.
func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, limit))
}

// bodyCase builds an answer whose body is data, read through one-byte
// reads when oneByte, failing with errBody after data when failing, and
// announcing cl as its Content-Length (-1: none).
func bodyCase(data []byte, cl int64, oneByte, failing bool) func() *http.Response {
	return func() *http.Response {
		var r io.Reader = bytes.NewReader(data)
		if failing {
			r = io.MultiReader(r, iotest.ErrReader(errBody))
		}
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		return &http.Response{Body: io.NopCloser(r), ContentLength: cl}
	}
}

var errBody = errors.New("connection reset")

// ReadBody returns what io.ReadAll of a limited reader returns, bytes and
// error, whatever the body announces: its own length, none, more than the
// limit, or less than it holds.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte(`{"data":[]}`), uint16(64), int16(11), false, false)
	f.Add([]byte(`{"data":[]}`), uint16(4), int16(11), true, false)
	f.Add([]byte(`{"data":[]}`), uint16(64), int16(-1), false, true)
	f.Add([]byte(`{"data":[]}`), uint16(64), int16(3), true, false)
	f.Add([]byte(`{"data":[]}`), uint16(64), int16(11), false, true)
	f.Add([]byte(`{"data":[]}`), uint16(64), int16(40), true, true)
	f.Add(bytes.Repeat([]byte("x"), 5000), uint16(4096), int16(5000), false, false)
	f.Add([]byte{}, uint16(0), int16(0), false, false)
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, cl int16, oneByte, failing bool) {
		mk := bodyCase(data, int64(cl), oneByte, failing)
		want, wantErr := readAllLimited(mk().Body, int64(limit))
		got, err := ReadBody(mk(), int64(limit))
		if !bytes.Equal(got, want) || err != wantErr {
			t.Fatalf("ReadBody = %q, %v; io.ReadAll = %q, %v", got, err, want, wantErr)
		}
	})
}

// An answer that announces its length within the limit is read into one
// buffer of that length (and the byte that meets the end), over HTTP.
func TestReadBodySizesItsBufferByContentLength(t *testing.T) {
	page := bytes.Repeat([]byte(`{"id":"tx-0001","reference":"req-0001"},`), 10_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		}
		for rest := page; len(rest) > 0; rest = rest[min(len(rest), 4096):] {
			_, _ = w.Write(rest[:min(len(rest), 4096)])
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		query   string
		sized   bool
		limit   int64
		wantLen int
	}{
		{"", true, 1 << 20, len(page)},
		{"?chunked=1", false, 1 << 20, len(page)},
		{"", false, 1000, 1000}, // announced beyond the limit: cut at it, as before
	} {
		resp, err := http.Get(srv.URL + c.query)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ReadBody(resp, c.limit)
		resp.Body.Close()
		if err != nil || len(b) != c.wantLen || !bytes.Equal(b, page[:c.wantLen]) {
			t.Fatalf("%s limit %d: %d bytes (%v), want the page's first %d", c.query, c.limit, len(b), err, c.wantLen)
		}
		if c.sized && cap(b) != len(page)+1 {
			t.Fatalf("%s: buffer of %d bytes for a %d-byte answer, want one of its length and one more", c.query, cap(b), len(page))
		}
		// A length announced beyond the limit sizes nothing: an answer
		// claiming gigabytes allocates no more than the limit's worth.
		if c.limit < int64(len(page)) && cap(b) >= len(page) {
			t.Fatalf("limit %d: a buffer of %d bytes, sized by the announced length", c.limit, cap(b))
		}
	}
}

// BenchmarkReadBody reads a 400 KB listing page announced by its length:
// ReadBody against io.ReadAll of a limited reader.
func BenchmarkReadBody(b *testing.B) {
	page := bytes.Repeat([]byte(`{"id":"tx-0001","reference":"req-0001"},`), 10_000)
	for _, c := range []struct {
		name string
		read func(*http.Response) ([]byte, error)
	}{
		{"ReadBody", func(r *http.Response) ([]byte, error) { return ReadBody(r, 1<<24) }},
		{"ReadAll", func(r *http.Response) ([]byte, error) { return readAllLimited(r.Body, 1<<24) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				resp := &http.Response{Body: io.NopCloser(bytes.NewReader(page)), ContentLength: int64(len(page))}
				if _, err := c.read(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
