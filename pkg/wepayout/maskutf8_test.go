package wepayout_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"unicode/utf8"
)

// TestRefusalMessageStaysUTF8: a 400 on a create whose text is not UTF-8
// (a plain-text answer in Latin-1, "Não" as N\xe3o; or an object of field
// errors quoting such bytes). The message becomes the REJECTED event's
// reasonMessage, an Avro string: UTF-8 only, or a consumer that decodes
// strings strictly fails on that event.
func TestRefusalMessageStaysUTF8(t *testing.T) {
	for name, body := range map[string]string{
		"plain text":    "N\xe3o autorizado: benefici\xe1rio bloqueado",
		"field errors":  "{\"message\":{\"beneficiary.name\":\"N\xe3o pode conter acentos\"}}",
		"error message": "{\"error\":{\"code\":\"invalid\",\"message\":{\"pix\":\"chave inv\xe1lida\"}}}",
	} {
		c := fake(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(400)
			io.WriteString(w, body)
		})
		_, err := c.Create(context.Background(), pixRequest("req-utf8", 100))
		re, _ := classOf(t, err)
		if !utf8.ValidString(re.Message) || !utf8.ValidString(re.Code) {
			t.Errorf("%s: the refusal is not UTF-8: message %q, code %q", name, re.Message, re.Code)
		}
	}
}
