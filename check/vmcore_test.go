package check

import (
	"io/fs"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

func TestFindDumps(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	fsys := fstest.MapFS{
		// Debian kdump-tools: dump.STAMP and dmesg.STAMP.
		"var/crash/202611200300/dump.202611200300":  {ModTime: t0, Data: []byte("KDUMP   ")},
		"var/crash/202611200300/dmesg.202611200300": {ModTime: t0.Add(time.Hour)},
		// makedumpfile died: only the temporary file.
		"var/crash/202611210300/dump-incomplete":  {ModTime: t0.Add(24 * time.Hour)},
		"var/crash/202611210300/dmesg.2026112103": {ModTime: t0.Add(24 * time.Hour)},
		// RHEL kdump.
		"var/crash/127.0.0.1-2026-11-19-03:00:00/vmcore":           {ModTime: t0.Add(-24 * time.Hour), Data: []byte("\x7fELF")},
		"var/crash/127.0.0.1-2026-11-19-03:00:00/vmcore-dmesg.txt": {ModTime: t0.Add(-24 * time.Hour)},
		// Not dumps: kdump-tools' own files, a directory with no dump.
		"var/crash/kexec_cmd":          {},
		"var/crash/kdump_lock":         {},
		"var/crash/202611220300/notes": {},
	}
	got, _, err := findDumps(fsys, "/var/crash")
	if err != nil {
		t.Fatal(err)
	}
	want := []Dump{
		{Dir: "/var/crash/127.0.0.1-2026-11-19-03:00:00", Files: []string{"vmcore"}, Time: t0.Add(-24 * time.Hour), Complete: true},
		{Dir: "/var/crash/202611200300", Files: []string{"dump.202611200300"}, Time: t0, Complete: true},
		{Dir: "/var/crash/202611210300", Files: []string{"dump-incomplete"}, Time: t0.Add(24 * time.Hour), Complete: false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dumps =\n%+v\nwant\n%+v", got, want)
	}
	if got, _, err := findDumps(fsys, "/srv/none"); err != nil || got != nil {
		t.Fatalf("missing directory: %v %v, want no dumps and no error", got, err)
	}
}

// The dump directory comes from the kdump tools' configuration: Debian's
// shipped /etc/default/kdump-tools (a real copy in testdata), RHEL's
// /etc/kdump.conf.
func TestDumpDirFromConfig(t *testing.T) {
	debian, err := os.ReadFile("testdata/debian-kdump-tools.conf")
	if err != nil {
		t.Fatal(err)
	}
	custom := strings.Replace(string(debian), `KDUMP_COREDIR="/var/crash"`, `KDUMP_COREDIR="/srv/crash/"`, 1)
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"none", fstest.MapFS{}, "/var/crash"},
		{"debian default", fstest.MapFS{"etc/default/kdump-tools": {Data: debian}}, "/var/crash"},
		{"debian custom", fstest.MapFS{"etc/default/kdump-tools": {Data: []byte(custom)}}, "/srv/crash"},
		{"rhel", fstest.MapFS{"etc/kdump.conf": {Data: []byte("# path /var/crash\npath /var/dumps\ncore_collector makedumpfile -l\n")}}, "/var/dumps"},
		{"rhel nfs target", fstest.MapFS{"etc/kdump.conf": {Data: []byte("nfs server:/export\npath crash\n")}}, "/var/crash"},
	} {
		if got := dumpDirFromConfig(tc.fsys); got != tc.want {
			t.Errorf("%s: dump dir = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Issue 12 item 8: where the dump directory is world-writable, any user
// could hide panic-without-vmcore with an empty, user-owned vmcore of a
// plausible mtime. A dump counts only when it is a regular file owned by
// root, not empty, and starts with a dump header (ELF, makedumpfile's
// kdump-compressed "KDUMP   " or flattened "makedumpfile").
func TestDumpEvidence(t *testing.T) {
	root := &syscall.Stat_t{Uid: 0}
	user := &syscall.Stat_t{Uid: 1000}
	elf := []byte("\x7fELF\x02\x01\x01\x00")
	for _, tc := range []struct {
		name     string
		file     *fstest.MapFile
		evidence bool
	}{
		{"elf by root", &fstest.MapFile{Data: elf, Sys: root}, true},
		{"kdump-compressed by root", &fstest.MapFile{Data: []byte("KDUMP   \x06\x00\x00\x00"), Sys: root}, true},
		{"flattened by root", &fstest.MapFile{Data: []byte("makedumpfile\x00\x00\x00\x00"), Sys: root}, true},
		{"empty by root", &fstest.MapFile{Sys: root}, false},
		{"elf by a user", &fstest.MapFile{Data: elf, Sys: user}, false},
		{"text by root", &fstest.MapFile{Data: []byte("not a dump\n"), Sys: root}, false},
		{"symlink", &fstest.MapFile{Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink, Sys: root}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := vmAfterPanic(t)
			tc.file.ModTime = panicTime.Add(30 * time.Second)
			fsys["var/crash/202611260418/vmcore"] = tc.file
			r := run(t, fsys, Options{})
			hidden := rules(r) == ""
			if hidden != tc.evidence {
				t.Errorf("findings %q: the file counts as a dump: %v, want %v", rules(r), hidden, tc.evidence)
			}
			if !tc.evidence && len(r.Findings) > 0 && !strings.Contains(r.Findings[0].Message, "not counted as dumps: /var/crash/202611260418/vmcore (") {
				t.Errorf("the message does not name the ignored file:\n%s", r.Findings[0].Message)
			}
		})
	}
}
