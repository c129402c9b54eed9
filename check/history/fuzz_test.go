package history

import (
	"testing"
	"time"
)

// Any boots.json: Parse accepts it or says it is corrupt; an accepted one
// is safe to judge.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"boots":[{"boot_id":"a","start":"2026-11-26T04:18:00Z","seen":"2026-11-26T04:18:09Z","clean":false},{"boot_id":"b","start":"2026-11-26T05:18:00Z","seen":"2026-11-26T05:18:09Z","end":"2026-11-26T06:00:00Z","clean":true}]}`))
	f.Add([]byte(`{"version":1,"boots":[{"boot_id":`))
	f.Add([]byte(`{"version":2,"boots":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("boots.json", data)
		if err != nil {
			return
		}
		now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		Within(s.UncleanEnds("c", now), now, 24*time.Hour)
	})
}
