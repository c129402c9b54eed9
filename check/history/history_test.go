package history

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

func read(t *testing.T, dir string) *State {
	t.Helper()
	s, err := Read(os.DirFS(dir), FileName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStartAndMarkClean(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	r, prev, err := StartBoot(dir, "boot-a", t0, clock(t0.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if len(prev.Boots) != 0 {
		t.Fatalf("first start: previous boots %+v, want none", prev.Boots)
	}
	if err := r.MarkClean(); err != nil {
		t.Fatal(err)
	}
	// Boot b never stops cleanly; boot c starts after it.
	if _, _, err := StartBoot(dir, "boot-b", t0.Add(time.Hour), clock(t0.Add(time.Hour+time.Minute))); err != nil {
		t.Fatal(err)
	}
	_, prev, err = StartBoot(dir, "boot-c", t0.Add(2*time.Hour), clock(t0.Add(2*time.Hour+time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if len(prev.Boots) != 2 || !prev.Boots[0].Clean || prev.Boots[1].Clean {
		t.Fatalf("previous boots = %+v, want a clean, b unclean", prev.Boots)
	}
	s := read(t, dir)
	want := []Boot{
		{ID: "boot-a", Start: t0, Seen: t0.Add(time.Minute), End: t0.Add(time.Minute), Clean: true},
		{ID: "boot-b", Start: t0.Add(time.Hour), Seen: t0.Add(time.Hour + time.Minute)},
		{ID: "boot-c", Start: t0.Add(2 * time.Hour), Seen: t0.Add(2*time.Hour + time.Minute)},
	}
	if len(s.Boots) != len(want) {
		t.Fatalf("boots = %+v", s.Boots)
	}
	for i := range want {
		if !s.Boots[i].Start.Equal(want[i].Start) || !s.Boots[i].Seen.Equal(want[i].Seen) || !s.Boots[i].End.Equal(want[i].End) ||
			s.Boots[i].ID != want[i].ID || s.Boots[i].Clean != want[i].Clean {
			t.Errorf("boot %d = %+v, want %+v", i, s.Boots[i], want[i])
		}
	}
	u := s.UncleanEnds("boot-c", t0.Add(2*time.Hour))
	if len(u) != 1 || u[0].Boot.ID != "boot-b" || !u[0].Before.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("unclean ends = %+v, want boot-b ending before boot-c started", u)
	}
	// Nothing but the state file is left: no temporary files.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != FileName {
		t.Errorf("state dir holds %v, want only %s", entries, FileName)
	}
	if st, _ := os.Stat(filepath.Join(dir, FileName)); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
}

// A restart within the same boot is the same boot; only its last stop counts.
func TestRestartInSameBoot(t *testing.T) {
	dir := t.TempDir()
	r, _, _ := StartBoot(dir, "boot-a", t0, clock(t0.Add(time.Minute)))
	if err := r.MarkClean(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := StartBoot(dir, "boot-a", t0, clock(t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	s := read(t, dir)
	if len(s.Boots) != 1 || s.Boots[0].Clean || !s.Boots[0].End.IsZero() || !s.Boots[0].Seen.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("boots = %+v, want one boot, running again", s.Boots)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range maxBoots + 5 {
		start := t0.Add(time.Duration(i) * time.Hour)
		if _, _, err := StartBoot(dir, "boot-"+start.Format("150405.000"), start, clock(start)); err != nil {
			t.Fatal(err)
		}
	}
	s := read(t, dir)
	if len(s.Boots) != maxBoots || !s.Boots[0].Start.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("%d boots, first %v; want %d, the oldest dropped", len(s.Boots), s.Boots[0].Start, maxBoots)
	}
}

func TestCorruptFile(t *testing.T) {
	for name, data := range map[string]string{
		"torn":        `{"version":1,"boots":[{"boot_id":"a","start":"2026-11-`,
		"not json":    "\x00\x00\x00\x00",
		"version":     `{"version":2,"boots":[]}`,
		"no boot id":  `{"version":1,"boots":[{"start":"2026-11-26T00:00:00Z","seen":"2026-11-26T00:00:00Z","clean":false}]}`,
		"stray field": `{"version":1,"boots":[],"extra":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, FileName)
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(os.DirFS(dir), FileName)
			if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), FileName+": corrupt state file: ") ||
				!strings.HasSuffix(err.Error(), "(remove it to start a new history)") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Read: %v, want a one-line corrupt state file error", err)
			}
			// The daemon refuses to overwrite it silently.
			if _, _, err := StartBoot(dir, "b", t0, clock(t0)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("StartBoot: %v, want ErrCorrupt", err)
			}
			if got, _ := os.ReadFile(p); string(got) != data {
				t.Errorf("the corrupt file was changed")
			}
		})
	}
	if _, err := Read(os.DirFS(t.TempDir()), FileName); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
}

// Window boundaries: an unclean end counts when the start of the boot after
// it lies in [now-window, now].
func TestWithinWindow(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	ends := []UncleanEnd{
		{Boot: Boot{ID: "too-old"}, Before: now.Add(-24*time.Hour - time.Nanosecond)},
		{Boot: Boot{ID: "at-edge"}, Before: now.Add(-24 * time.Hour)},
		{Boot: Boot{ID: "inside"}, Before: now.Add(-time.Hour)},
		{Boot: Boot{ID: "now"}, Before: now},
		{Boot: Boot{ID: "future"}, Before: now.Add(time.Nanosecond)},
	}
	var ids []string
	for _, e := range Within(ends, now, 24*time.Hour) {
		ids = append(ids, e.Boot.ID)
	}
	if strings.Join(ids, ",") != "at-edge,inside,now" {
		t.Fatalf("within = %v, want at-edge,inside,now", ids)
	}
}

func TestUncleanEndsBounds(t *testing.T) {
	s := &State{Version: 1, Boots: []Boot{
		{ID: "a", Start: t0},
		{ID: "b", Start: t0.Add(time.Hour), Clean: true},
		{ID: "c", Start: t0.Add(2 * time.Hour)},
		{ID: "d", Start: t0.Add(3 * time.Hour)},
	}}
	// The current boot (e) is not recorded yet: d's end is bounded by e's start.
	u := s.UncleanEnds("e", t0.Add(4*time.Hour))
	if len(u) != 3 || u[0].Boot.ID != "a" || !u[0].Before.Equal(t0.Add(time.Hour)) ||
		u[1].Boot.ID != "c" || !u[1].Before.Equal(t0.Add(3*time.Hour)) ||
		u[2].Boot.ID != "d" || !u[2].Before.Equal(t0.Add(4*time.Hour)) {
		t.Fatalf("unclean ends = %+v", u)
	}
	// Recorded: d is the current boot and not an end.
	if u := s.UncleanEnds("d", t0.Add(3*time.Hour)); len(u) != 2 || u[1].Boot.ID != "c" || !u[1].Before.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("unclean ends with d current = %+v", u)
	}
}

func TestBootTime(t *testing.T) {
	got, err := BootTime([]byte("cpu  1 2 3\nbtime 1795666691\nprocesses 10\n"))
	if err != nil || !got.Equal(time.Unix(1795666691, 0)) {
		t.Fatalf("BootTime = %v, %v", got, err)
	}
	if _, err := BootTime([]byte("cpu 1\n")); err == nil || err.Error() != "/proc/stat has no btime line" {
		t.Fatalf("no btime: %v", err)
	}
}

// Start reads the running kernel's boot id and boot time.
func TestStartOnThisMachine(t *testing.T) {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	dir := t.TempDir()
	r, _, err := Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.MarkClean(); err != nil {
		t.Fatal(err)
	}
	s := read(t, dir)
	if len(s.Boots) != 1 || s.Boots[0].ID != strings.TrimSpace(string(id)) || !s.Boots[0].Clean || s.Boots[0].Start.After(time.Now()) {
		t.Fatalf("boots = %+v", s.Boots)
	}
}
