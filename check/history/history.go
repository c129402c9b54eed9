// Package history keeps ktracer's own record of boots: which boot started
// when, and whether it ended with a clean stop. A boot that started but was
// never marked clean ended in a panic, a reset or a power cut; several of
// those close together are a panic loop (seed incident 3), which leaves no
// other trace when kdump is broken.
//
// The daemon calls Start when it starts and MarkClean when it stops on
// purpose; `ktracer check` reads the file with Read.
package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the state file inside the state directory.
const FileName = "boots.json"

// DefaultDir is where the daemon keeps its state.
const DefaultDir = "/var/lib/ktracer"

// maxBoots bounds the file: older boots are dropped first.
const maxBoots = 100

// version is the file format; a file with another version is refused
// rather than misread.
const version = 1

// Boot is one boot as ktracer saw it.
type Boot struct {
	ID    string    `json:"boot_id"`      // /proc/sys/kernel/random/boot_id
	Start time.Time `json:"start"`        // the kernel's boot time (btime in /proc/stat)
	Seen  time.Time `json:"seen"`         // when ktracer last started during this boot
	End   time.Time `json:"end,omitzero"` // when ktracer stopped cleanly
	Clean bool      `json:"clean"`        // the boot ended with a clean stop
}

// State is the whole file: boots, oldest first.
type State struct {
	Version int    `json:"version"`
	Boots   []Boot `json:"boots"`
}

// ErrCorrupt is wrapped by Read for a file that exists but cannot be used.
var ErrCorrupt = errors.New("corrupt state file")

// Read loads the state file name from fsys. A missing file is reported as
// an error wrapping fs.ErrNotExist; an unreadable one wraps ErrCorrupt.
func Read(fsys fs.FS, name string) (*State, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	return Parse(name, data)
}

// Parse reads a state file's contents; name is used in errors.
func Parse(name string, data []byte) (*State, error) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v (remove it to start a new history)", name, ErrCorrupt, err)
	}
	if s.Version != version {
		return nil, fmt.Errorf("%s: %w: format version %d, want %d (remove it to start a new history)", name, ErrCorrupt, s.Version, version)
	}
	for i, b := range s.Boots {
		if b.ID == "" || b.Start.IsZero() {
			return nil, fmt.Errorf("%s: %w: boot %d has no boot_id or start (remove it to start a new history)", name, ErrCorrupt, i)
		}
	}
	return &s, nil
}

// Recorder records the current boot in a state directory.
type Recorder struct {
	path string
	id   string
	now  func() time.Time
}

// Start records that ktracer started in the running boot: it reads the boot
// id and boot time from /proc, adds the boot to dir's state file (creating
// dir if needed) and returns the Recorder whose MarkClean records a clean
// stop. The previous boots, as they were before this call, are returned too,
// so the caller can judge how the last boot ended.
func Start(dir string) (*Recorder, *State, error) {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, nil, fmt.Errorf("read boot id: %w", err)
	}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, nil, fmt.Errorf("read boot time: %w", err)
	}
	bt, err := BootTime(stat)
	if err != nil {
		return nil, nil, err
	}
	return StartBoot(dir, strings.TrimSpace(string(id)), bt, time.Now)
}

// StartBoot is Start with the boot and the clock given.
func StartBoot(dir, bootID string, bootTime time.Time, now func() time.Time) (*Recorder, *State, error) {
	if bootID == "" {
		return nil, nil, errors.New("empty boot id")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	prev, err := load(path)
	if err != nil {
		return nil, nil, err
	}
	next := &State{Version: version, Boots: append([]Boot(nil), prev.Boots...)}
	t := now().UTC()
	if n := len(next.Boots); n > 0 && next.Boots[n-1].ID == bootID {
		// Restarted within the same boot: only the last stop counts.
		b := &next.Boots[n-1]
		b.Seen, b.End, b.Clean = t, time.Time{}, false
	} else {
		next.Boots = append(next.Boots, Boot{ID: bootID, Start: bootTime.UTC(), Seen: t})
	}
	if len(next.Boots) > maxBoots {
		next.Boots = next.Boots[len(next.Boots)-maxBoots:]
	}
	if err := write(path, next); err != nil {
		return nil, nil, err
	}
	return &Recorder{path: path, id: bootID, now: now}, prev, nil
}

// MarkClean records that ktracer is stopping on purpose in this boot, so the
// next boot does not count this one as an unclean end.
func (r *Recorder) MarkClean() error {
	s, err := load(r.path)
	if err != nil {
		return err
	}
	for i := len(s.Boots) - 1; i >= 0; i-- {
		if s.Boots[i].ID == r.id {
			s.Boots[i].Clean = true
			s.Boots[i].End = r.now().UTC()
			return write(r.path, s)
		}
	}
	return fmt.Errorf("%s: boot %s is not recorded (was the file replaced?)", r.path, r.id)
}

// load reads path; a missing file is an empty history.
func load(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: version}, nil
	}
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// write replaces path atomically: a crash at any point leaves either the
// old file or the new one, never a torn one, because the state file is
// read after exactly the kind of crash it records.
func write(path string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+FileName+".tmp*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write state: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	// The rename is durable only once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write state: fsync %s: %w", dir, err)
	}
	return nil
}

// UncleanEnd is a recorded boot that never got a clean stop.
type UncleanEnd struct {
	Boot Boot
	// Before is when the boot had certainly ended: the start of the boot
	// recorded after it. The end itself (panic, reset) left no timestamp.
	Before time.Time
}

// UncleanEnds lists the boots before currentID's boot that ended without a
// clean stop, oldest first. Each boot's end is bounded by the next recorded
// boot's start; the last recorded boot before the current one is bounded by
// currentStart.
func (s *State) UncleanEnds(currentID string, currentStart time.Time) []UncleanEnd {
	if s == nil {
		return nil
	}
	var out []UncleanEnd
	for i, b := range s.Boots {
		if b.ID == currentID || b.Clean {
			continue
		}
		before := currentStart
		if i+1 < len(s.Boots) && s.Boots[i+1].ID != currentID {
			before = s.Boots[i+1].Start
		}
		out = append(out, UncleanEnd{Boot: b, Before: before})
	}
	return out
}

// Within returns the unclean ends whose end bound lies in [now-window, now].
func Within(ends []UncleanEnd, now time.Time, window time.Duration) []UncleanEnd {
	from := now.Add(-window)
	var out []UncleanEnd
	for _, e := range ends {
		if !e.Before.Before(from) && !e.Before.After(now) {
			out = append(out, e)
		}
	}
	return out
}

// BootTime reads the btime line of /proc/stat.
func BootTime(stat []byte) (time.Time, error) {
	for line := range strings.SplitSeq(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat: bad btime %q", v)
			}
			return time.Unix(sec, 0).UTC(), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat has no btime line")
}
