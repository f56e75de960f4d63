package wepayout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/wompi-payouts/pipeline/pkg/rail"
)

// Sentinel errors. Those marked "before any request" mean the call had no
// effect.
var (
	// ErrConfig is wrapped by New when the Config is unusable.
	ErrConfig = errors.New("wepayout: invalid config")
	// ErrInvalidRequest: a request the client refuses before sending it (an
	// empty id, a currency other than BRL, an invalid payee); returned,
	// wrapped in a *rail.Error of class Rejected, by Create, before any
	// request.
	ErrInvalidRequest = errors.New("wepayout: invalid request")
	// ErrInvalidSignature: a webhook whose x-webhook-wp-signature is
	// missing or does not match our record of the payout, or whose invoice
	// is not our record's; returned by VerifyWebhook.
	ErrInvalidSignature = errors.New("wepayout: invalid webhook signature")
	// ErrMalformedWebhook: a webhook body that is not a payment event;
	// returned by ParseWebhook and VerifyWebhook.
	ErrMalformedWebhook = errors.New("wepayout: malformed webhook")
)

// Codes the client sets in rail.Error.Code where WEpayout gives none.
const (
	// CodeUnauthorized is WEpayout's error.code of a 401 [doc].
	CodeUnauthorized = "unauthorized"
	// CodeBadAnswer: a 2xx whose body the client cannot read [ours].
	CodeBadAnswer = "BAD_ANSWER"
	// CodeInvalidRequest: refused locally, never sent [ours].
	CodeInvalidRequest = "INVALID_REQUEST"
)

// op names a call in rail.Error.Op.
const (
	opCreate  = "create"
	opGet     = "get"
	opFind    = "find"
	opList    = "list"
	opBalance = "balance"
)

// classify says what an HTTP error answer means for the payout. A 3xx
// (a redirect, never followed: rail.NoRedirects) is a wrong base URL.
func classify(op string, status int) rail.Class {
	create := op == opCreate
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden, status >= 300 && status < 400:
		return rail.Unauthorized
	case create && status == unauthorizedOnCreate404:
		return rail.Unauthorized
	case status == http.StatusTooManyRequests:
		if create {
			return createTooManyRequests
		}
		return rail.Retryable
	case status >= 500:
		if create {
			return rail.OutcomeUnknown
		}
		return rail.Retryable
	case create && (status == http.StatusRequestTimeout || status == http.StatusTooEarly):
		return createUnknown408And425
	case create && (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity):
		return rail.Rejected
	case create && status == http.StatusConflict:
		// Not published; a 409 can only mean the invoice exists [ours].
		return rail.AlreadyExists
	}
	return rail.Permanent
}

// httpError builds the error of a non-2xx answer. The provider's message is
// masked: it may echo the payee's data.
func httpError(op string, status int, raw []byte, pii []string) *rail.Error {
	e := &rail.Error{Rail: rail.WEpayout, Op: op, HTTPStatus: status, Class: classify(op, status)}
	t := bytes.TrimSpace(raw)
	var body struct {
		Message json.RawMessage `json:"message"`
		Error   *struct {
			Code    string          `json:"code"`
			Message json.RawMessage `json:"message"`
		} `json:"error"`
		Errors json.RawMessage `json:"errors"`
	}
	taken := false
	if len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &body) == nil {
		msg := body.Message
		if body.Error != nil {
			// The code becomes a REJECTED event's reasonCode: masked
			// and bounded unless it reads as a code.
			e.Code = maskCode(body.Error.Code, pii)
			if len(msg) == 0 {
				msg = body.Error.Message
			}
		}
		e.Message = messageText(msg)
		// A validation answer's message names its first failed field
		// only ("... (and 1 more error)"): the invoice's refusal may be
		// in the errors object alone.
		var fields map[string]json.RawMessage
		if json.Unmarshal(body.Errors, &fields) == nil {
			for field, m := range fields {
				taken = taken || invoiceTaken(field+": "+messageText(m))
			}
		}
	} else if len(t) > 0 && t[0] != '<' {
		e.Message = string(t)
	}
	if e.Class == rail.Rejected && (taken || invoiceTaken(e.Message)) {
		// A refusal of our invoice as already used proves WEpayout holds a
		// payment under it: never a refusal of the payee [ours].
		e.Class = rail.AlreadyExists
	}
	e.Message = maskText(e.Message, pii)
	return e
}

// messageText renders a message that may be a string, a list or an object
// of field errors.
func messageText(m json.RawMessage) string {
	m = bytes.TrimSpace(m)
	if len(m) == 0 || string(m) == "null" {
		return ""
	}
	var one string
	if json.Unmarshal(m, &one) == nil {
		return one
	}
	var many []string
	if json.Unmarshal(m, &many) == nil {
		return strings.Join(many, "; ")
	}
	return string(m)
}

// transportError builds the error of a call that got no readable answer. A
// create is OutcomeUnknown unless the connection was never made (a refused
// dial); a read is Retryable, Permanent when the caller cancelled it.
func transportError(op string, err error) *rail.Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL may carry our id in its query
	}
	c := rail.Retryable
	var oe *net.OpError
	notSent := errors.As(err, &oe) && oe.Op == "dial"
	if op == opCreate && !notSent {
		c = rail.OutcomeUnknown
	}
	if op != opCreate && errors.Is(err, context.Canceled) {
		c = rail.Permanent
	}
	return &rail.Error{Rail: rail.WEpayout, Op: op, Class: c, Err: err}
}

func asRail(err error, re **rail.Error) bool { return errors.As(err, re) }
