package check

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Where panic logs survive a reboot. The kernel's pstore filesystem shows
// what the backend (ramoops in reserved RAM, efi_pstore in EFI variables)
// kept; systemd-pstore.service moves those files to its archive at boot, so
// on a systemd machine that is where they are found.
const (
	pstoreDir        = "sys/fs/pstore"
	systemdPstoreDir = "var/lib/systemd/pstore"
)

// PstoreRecord is one kernel log record kept across a reboot.
type PstoreRecord struct {
	Path string `json:"path"` // absolute in the checked root
	// Type and backend from the name: dmesg-ramoops-0, dmesg-efi_pstore-...
	Type    string `json:"type"`
	Backend string `json:"backend,omitempty"`
	// Reason from the kmsg_dump header, "Panic#1 Part1": Panic, Oops,
	// Emergency, Restart, Halt, Poweroff.
	Reason string `json:"reason,omitempty"`
	Part   int    `json:"part,omitempty"`
	// When the backend wrote it: the file's time, which pstore sets from
	// the record's own timestamp.
	Time time.Time `json:"time"`
	// The "Kernel panic - not syncing: ..." line, without its printk prefix.
	Panic string `json:"panic,omitempty"`
	// The first line that says why, before the panic: "BUG: ...", "Oops: ...".
	Cause string `json:"cause,omitempty"`
	// Int3 is the last int3 oops before the panic (freed-init-call).
	Int3       *Int3Trap `json:"int3_trap,omitempty"`
	Compressed bool      `json:"compressed,omitempty"` // .enc.z: the kernel could not decompress it
	// Archived records were moved by systemd-pstore; their time is when
	// they were archived, not when the kernel wrote them.
	Archived bool   `json:"archived,omitempty"`
	Error    string `json:"error,omitempty"` // why the text could not be read
}

var (
	dumpHeader = regexp.MustCompile(`^(\w+)#\d+ Part(\d+)$`)
	// The printk prefix of a pstore or dmesg line: "<0>[    5.435491] ".
	printkPrefix = regexp.MustCompile(`^(<\d+>)?\[\s*\d+\.\d+\]\s?`)
	panicLine    = regexp.MustCompile(`Kernel panic - not syncing: ?(.*)$`)
	causeLine    = regexp.MustCompile(`(BUG: .*|Oops: .*|general protection fault.*|kernel BUG at .*|Unable to handle .*)$`)
)

// readPstore lists the kmsg records in the pstore filesystem and in
// systemd-pstore's archive, oldest first. An entry that cannot be read (not
// a regular file, too big, unreadable) is an error of its own in errs; the
// other records are still read.
func readPstore(fsys fs.FS) (recs []PstoreRecord, errs []SourceError) {
	for _, dir := range []string{pstoreDir, systemdPstoreDir} {
		fail := func(p string, err error) {
			if errors.Is(err, fs.ErrPermission) {
				err = fmt.Errorf("%w (run as root)", err)
			}
			errs = append(errs, SourceError{Source: "pstore /" + p, Err: err.Error()})
		}
		fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == dir {
					return fs.SkipDir
				}
				fail(p, err)
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			name := d.Name()
			if d.IsDir() {
				// systemd-pstore keeps one directory per dump; the
				// kernel's pstore has none.
				switch {
				case p == dir:
					return nil
				case strings.HasPrefix(name, "dmesg"):
					fail(p, errors.New("a directory, not a record"))
					return fs.SkipDir
				case dir == pstoreDir || strings.Count(p, "/") > strings.Count(dir, "/")+1:
					return fs.SkipDir
				}
				return nil
			}
			if !strings.HasPrefix(name, "dmesg") {
				return nil // console-, pmsg-, ftrace- records say nothing about the end
			}
			info, err := d.Info()
			if err != nil {
				fail(p, err)
				return nil
			}
			data, err := readRegular(fsys, p, maxPstoreRecord)
			if err != nil {
				fail(p, err)
				return nil
			}
			rec := parsePstore("/"+p, name, info.ModTime(), data)
			rec.Archived = dir == systemdPstoreDir
			recs = append(recs, rec)
			return nil
		})
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	return recs, errs
}

// parsePstore reads one record. The kernel names them
// <type>-<backend>-<id>[.enc.z]; systemd-pstore joins a dump's parts into
// dmesg.txt.
func parsePstore(p, name string, mtime time.Time, data []byte) PstoreRecord {
	r := PstoreRecord{Path: p, Time: mtime.UTC(), Type: "dmesg"}
	base := strings.TrimSuffix(name, ".enc.z")
	if parts := strings.SplitN(base, "-", 3); len(parts) == 3 {
		r.Type, r.Backend = parts[0], parts[1]
	}
	if strings.HasSuffix(name, ".enc.z") {
		// The kernel keeps a record it could not decompress as is; pstore
		// compresses with raw deflate, so try here.
		r.Compressed = true
		out, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(data)), 16<<20))
		if err != nil {
			r.Error = fmt.Sprintf("compressed record: %v", err)
			return r
		}
		data = out
	}
	text := string(data)
	first, _, _ := strings.Cut(text, "\n")
	if m := dumpHeader.FindStringSubmatch(strings.TrimSpace(first)); m != nil {
		r.Reason = m[1]
		fmt.Sscanf(m[2], "%d", &r.Part)
	}
	// The cause is the last oops before the panic; its "Oops: ..." line
	// right after a "BUG: ..." line adds nothing.
	var cause string
	causeAt := -100
	var int3 int3Parser
	for i, line := range strings.Split(text, "\n") {
		line = printkPrefix.ReplaceAllString(strings.TrimRight(line, "\r"), "")
		if m := panicLine.FindStringSubmatch(line); m != nil {
			r.Panic = "Kernel panic - not syncing: " + strings.TrimSpace(m[1])
			r.Cause = cause
			r.Int3 = int3.last
			break
		}
		m := causeLine.FindString(line)
		int3.line(line, m != "")
		if m != "" {
			if strings.HasPrefix(m, "Oops: ") && i-causeAt <= 5 {
				continue
			}
			cause, causeAt = strings.TrimSpace(m), i
		}
	}
	if r.Reason == "" && r.Panic != "" {
		r.Reason = "Panic"
	}
	return r
}

// isPanic tells whether the record was written by a panic.
func (r PstoreRecord) isPanic() bool { return r.Reason == "Panic" || r.Panic != "" }

// PstoreState says whether pstore can keep anything: the filesystem must be
// mounted and a backend registered, else a panic's log is lost.
type PstoreState struct {
	Mounted bool   `json:"mounted"`
	Backend string `json:"backend,omitempty"` // from /sys/module/pstore/parameters/backend
}

func readPstoreState(fsys fs.FS) PstoreState {
	var s PstoreState
	if mounts, err := fs.ReadFile(fsys, "proc/mounts"); err == nil {
		for line := range strings.SplitSeq(string(mounts), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[2] == "pstore" && path.Clean(f[1]) == "/"+pstoreDir {
				s.Mounted = true
			}
		}
	}
	if b, err := fs.ReadFile(fsys, "sys/module/pstore/parameters/backend"); err == nil {
		if v := strings.TrimSpace(string(b)); v != "(null)" {
			s.Backend = v
		}
	}
	return s
}
