package rail

import "testing"

func TestExtentCheck(t *testing.T) {
	read := Extent{Records: 120, Pages: 3} // what earlier pages announced
	cases := []struct {
		name           string
		ext            Extent
		records, pages int
		frozen         bool
		want           Lag
	}{
		{"first page", Extent{}, 120, 3, true, InStep},
		{"same", read, 120, 3, true, InStep},
		{"nothing announced", read, 0, 0, true, InStep},
		{"fewer records", read, 119, 3, false, PageBehind},
		{"fewer pages", read, 120, 2, false, PageBehind},
		{"fewer pages, no total", read, 0, 2, true, PageBehind},
		{"more records, growing", read, 121, 3, false, InStep},
		{"more pages, growing", read, 120, 4, false, InStep},
		{"more records, frozen", read, 121, 3, true, EarlierBehind},
		{"more pages, frozen", read, 0, 4, true, EarlierBehind},
		{"fewer records, more pages, frozen", read, 119, 4, true, PageBehind},
	}
	for _, c := range cases {
		if got := c.ext.Check(c.records, c.pages, c.frozen); got != c.want {
			t.Errorf("%s: Check(%d, %d, frozen %v) = %v, want %v", c.name, c.records, c.pages, c.frozen, got, c.want)
		}
	}
}

func TestExtentAddKeepsTheMost(t *testing.T) {
	var x Extent
	x.Add(120, 3)
	x.Add(119, 0) // a page behind, or one announcing no page count
	x.Add(0, 4)
	if x != (Extent{Records: 120, Pages: 4}) {
		t.Fatalf("extent %+v, want the most records (120) and pages (4) any page announced", x)
	}
}
