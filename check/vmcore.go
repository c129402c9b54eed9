package check

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// DefaultDumpDir is where Debian's kdump-tools (KDUMP_COREDIR) and RHEL's
// kdump (path in /etc/kdump.conf) save dumps unless configured otherwise.
const DefaultDumpDir = "/var/crash"

// Dump is one crash dump directory: Debian's kdump-tools writes
// /var/crash/YYYYMMDDHHMM/dump.YYYYMMDDHHMM (dump-incomplete while
// makedumpfile runs), RHEL's kdump /var/crash/HOST-DATE/vmcore
// (vmcore-incomplete while it runs).
type Dump struct {
	Dir   string    `json:"dir"`   // absolute in the checked root
	Files []string  `json:"files"` // the dump files, not the dmesg texts
	Time  time.Time `json:"time"`  // the newest dump file's time
	// Complete is false when only a *-incomplete file is there: the crash
	// kernel started saving and died (out of memory, seed incident 3) or
	// the machine was reset.
	Complete bool `json:"complete"`
}

// dumpDirFromConfig finds the dump directory the kdump tools on this root
// are configured with: KDUMP_COREDIR in /etc/default/kdump-tools (Debian,
// Ubuntu), "path" in /etc/kdump.conf (RHEL, Fedora), else /var/crash.
func dumpDirFromConfig(fsys fs.FS) string {
	if b, err := fs.ReadFile(fsys, "etc/default/kdump-tools"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "KDUMP_COREDIR="); ok {
				if v = strings.Trim(v, `"'`); strings.HasPrefix(v, "/") {
					return path.Clean(v)
				}
			}
		}
	}
	if b, err := fs.ReadFile(fsys, "etc/kdump.conf"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			// A dump target (nfs, ssh, a device) makes "path" relative to
			// it, not to this root: only a local path is checked.
			if len(f) == 2 && f[0] == "path" && strings.HasPrefix(f[1], "/") {
				return path.Clean(f[1])
			}
		}
	}
	return DefaultDumpDir
}

// isDumpFile tells a dump from the texts saved next to it (dmesg.STAMP,
// vmcore-dmesg.txt).
func isDumpFile(name string) bool {
	if strings.Contains(name, "dmesg") {
		return false
	}
	return strings.HasPrefix(name, "dump") || strings.HasPrefix(name, "vmcore")
}

// findDumps lists the dumps under dir (absolute in the root), oldest first.
// A missing directory means no dump was ever saved there.
func findDumps(fsys fs.FS, dir string) ([]Dump, error) {
	rel := strings.TrimPrefix(path.Clean(dir), "/")
	if rel == "" {
		rel = "."
	}
	entries, err := fs.ReadDir(fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dump directory %s: %w", dir, err)
	}
	var dumps []Dump
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := path.Join(rel, e.Name())
		files, err := fs.ReadDir(fsys, sub)
		if err != nil {
			return nil, fmt.Errorf("read dump directory %s: %w", "/"+sub, err)
		}
		d := Dump{Dir: "/" + sub}
		for _, f := range files {
			if f.IsDir() || !isDumpFile(f.Name()) {
				continue
			}
			info, err := f.Info()
			if err != nil {
				return nil, err
			}
			d.Files = append(d.Files, f.Name())
			if info.ModTime().After(d.Time) {
				d.Time = info.ModTime().UTC()
			}
			if !strings.Contains(f.Name(), "incomplete") {
				d.Complete = true
			}
		}
		if len(d.Files) > 0 {
			dumps = append(dumps, d)
		}
	}
	sort.SliceStable(dumps, func(i, j int) bool { return dumps[i].Time.Before(dumps[j].Time) })
	return dumps, nil
}
