package apachekafka

import "testing"

// A cluster id starting with '-' made one CI run in 64 fail at
// "kafka-storage format" (read as a flag). Generated ids never do.
func TestClusterIDNeverLooksLikeAFlag(t *testing.T) {
	for range 20000 {
		if id := newClusterID(); id[0] == '-' || len(id) != 22 {
			t.Fatalf("cluster id %q", id)
		}
	}
}
