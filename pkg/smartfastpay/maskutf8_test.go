package smartfastpay_test

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestRefusalMessageStaysUTF8: a 400 on a create whose message is longer
// than the kept 200 bytes, in Spanish, with an accented letter across the
// cut. The message becomes the REJECTED event's reasonMessage (an Avro
// string: UTF-8), so the cut must not split a character: a consumer that
// decodes strings strictly would fail on that event.
func TestRefusalMessageStaysUTF8(t *testing.T) {
	// 199 ASCII bytes, then "ó" (2 bytes) at bytes 199-200.
	msg := strings.Repeat("a", 199) + "ó no es válido para la transacción"
	st := &stub{api: answer(400, `{"requestId":"r","moreInformation":"`+msg+`"}`)}
	c := newStub(t, st)
	_, err := c.Create(ctx, validRequest("")("req-1", 5000))
	re := railErr(t, err)
	if !utf8.ValidString(re.Message) {
		t.Errorf("the refusal's message is not UTF-8: %q", re.Message)
	}
	if !utf8.ValidString(err.Error()) {
		t.Errorf("the error is not UTF-8: %q", err.Error())
	}
}

// TestRefusalMessageHidesThePayeesName: a 400 on a create that quotes the
// payee's name back (no digits, no '@': no heuristic can tell it). The
// message becomes the REJECTED event's reasonMessage and every log line
// of the error; the name must not reach them, as it does not on the
// other rails (Wompi's sentValues, WEpayout's pii).
func TestRefusalMessageHidesThePayeesName(t *testing.T) {
	req := validRequest("")("req-1", 5000) // Payee.Name "Ana Gómez"
	st := &stub{api: answer(400, `{"requestId":"r","moreInformation":"el beneficiario Ana Gómez (ANA GÓMEZ) no está habilitado"}`)}
	c := newStub(t, st)
	_, err := c.Create(ctx, req)
	re := railErr(t, err)
	if strings.Contains(strings.ToLower(re.Message), "gómez") || strings.Contains(strings.ToLower(err.Error()), "gómez") {
		t.Errorf("the refusal quotes the payee's name: %q", err.Error())
	}
	if !strings.Contains(re.Message, "no está habilitado") {
		t.Errorf("the refusal lost its words: %q", re.Message)
	}
}
