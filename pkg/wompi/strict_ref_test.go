package wompi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// decodeStrictTokens is the parser decodeStrict replaced, on encoding/json's
// Decoder.Token, kept as FuzzDecodeStrict's reference: one JSON value
// (numbers as json.Number), refusing a repeated or case-variant key in any
// object (ErrAmbiguousEvent), nesting deeper than maxEventDepth, more
// than maxEventValues values, a body that is not UTF-8, and trailing data.
func decodeStrictTokens(body []byte) (any, error) {
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: the body is not UTF-8", ErrMalformedEvent)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	values := 0
	v, err := tokenValue(dec, 0, &values)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the event object", ErrMalformedEvent)
	}
	return v, nil
}

func tokenValue(dec *json.Decoder, depth int, values *int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	if *values++; *values > maxEventValues {
		return nil, fmt.Errorf("%w: more than %d JSON values", ErrMalformedEvent, maxEventValues)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	if depth >= maxEventDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrMalformedEvent, maxEventDepth)
	}
	switch d {
	case '{':
		m := map[string]any{}
		seen := map[string]struct{}{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
			}
			k, _ := kt.(string)
			fk := foldKey(k)
			if _, dup := seen[fk]; dup {
				return nil, fmt.Errorf("%w: key %q", ErrAmbiguousEvent, truncateKey(k))
			}
			seen[fk] = struct{}{}
			if m[k], err = tokenValue(dec, depth+1, values); err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil { // '}'
			return nil, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
		}
		return m, nil
	case '[':
		a := []any{}
		for dec.More() {
			v, err := tokenValue(dec, depth+1, values)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%w: unexpected %v", ErrMalformedEvent, d)
}
