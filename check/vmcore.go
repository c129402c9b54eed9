package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"syscall"
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

// dumpMagic are the headers a saved dump starts with: ELF (the kernel's
// /proc/vmcore copied by cp, or makedumpfile -E), makedumpfile's
// kdump-compressed format ("KDUMP   ", -c/-l/-p/-z, what Debian's
// kdump-tools and RHEL's kdump write) and its flattened format (-F).
var dumpMagic = [][]byte{[]byte("\x7fELF"), []byte("KDUMP   "), []byte("DISKDUMP"), []byte("makedumpfile")}

// notEvidence says why a dump-named file does not count, or "" when it
// does. An incomplete dump needs only to be a root-owned regular file: it
// may have been cut off before its header.
func notEvidence(fsys fs.FS, p string, info fs.FileInfo, incomplete bool) string {
	if !info.Mode().IsRegular() { // ReadDir's info is Lstat's: a symlink is not followed
		return "not a regular file"
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return fmt.Sprintf("owned by uid %d, not root", st.Uid)
	}
	if incomplete {
		return ""
	}
	if info.Size() == 0 {
		return "empty"
	}
	f, err := fsys.Open(p)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	defer f.Close()
	head := make([]byte, 12)
	n, _ := io.ReadFull(f, head)
	for _, m := range dumpMagic {
		if n >= len(m) && bytes.Equal(head[:len(m)], m) {
			return ""
		}
	}
	return "no ELF or makedumpfile header"
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
//
// Files named like dumps that are not evidence of one are returned apart,
// each with the reason: not a regular file, not owned by root, empty, no
// dump header. A user who can write the dump directory must not be able to
// hide panic-without-vmcore with an empty "vmcore".
func findDumps(fsys fs.FS, dir string) (dumps []Dump, ignored []string, err error) {
	rel := strings.TrimPrefix(path.Clean(dir), "/")
	if rel == "" {
		rel = "."
	}
	entries, err := fs.ReadDir(fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read dump directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := path.Join(rel, e.Name())
		files, err := fs.ReadDir(fsys, sub)
		if err != nil {
			return nil, nil, fmt.Errorf("read dump directory %s: %w", "/"+sub, err)
		}
		d := Dump{Dir: "/" + sub}
		for _, f := range files {
			if f.IsDir() || !isDumpFile(f.Name()) {
				continue
			}
			info, err := f.Info()
			if err != nil {
				return nil, nil, err
			}
			incomplete := strings.Contains(f.Name(), "incomplete")
			if why := notEvidence(fsys, path.Join(sub, f.Name()), info, incomplete); why != "" {
				ignored = append(ignored, "/"+path.Join(sub, f.Name())+" ("+why+")")
				continue
			}
			d.Files = append(d.Files, f.Name())
			if info.ModTime().After(d.Time) {
				d.Time = info.ModTime().UTC()
			}
			if !incomplete {
				d.Complete = true
			}
		}
		if len(d.Files) > 0 {
			dumps = append(dumps, d)
		}
	}
	sort.SliceStable(dumps, func(i, j int) bool { return dumps[i].Time.Before(dumps[j].Time) })
	return dumps, ignored, nil
}
