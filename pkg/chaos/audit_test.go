package chaos

import "testing"

func TestContainsToken(t *testing.T) {
	cases := []struct {
		s, v string
		want bool
	}{
		{`"account":"75123456"`, "75123456", true},
		{`b-ece3e8ac307512345600726`, "75123456", false},
		{`"time":"01:22:11.751234567Z"`, "75123456", false},
		{`75123456`, "75123456", true},
		{`to ana@example.co now`, "ana@example.co", true},
	}
	for _, tc := range cases {
		if got := containsToken(tc.s, tc.v); got != tc.want {
			t.Errorf("containsToken(%q, %q) = %v", tc.s, tc.v, got)
		}
	}
}
