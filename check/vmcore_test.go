package check

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestFindDumps(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	fsys := fstest.MapFS{
		// Debian kdump-tools: dump.STAMP and dmesg.STAMP.
		"var/crash/202611200300/dump.202611200300":  {ModTime: t0},
		"var/crash/202611200300/dmesg.202611200300": {ModTime: t0.Add(time.Hour)},
		// makedumpfile died: only the temporary file.
		"var/crash/202611210300/dump-incomplete":  {ModTime: t0.Add(24 * time.Hour)},
		"var/crash/202611210300/dmesg.2026112103": {ModTime: t0.Add(24 * time.Hour)},
		// RHEL kdump.
		"var/crash/127.0.0.1-2026-11-19-03:00:00/vmcore":           {ModTime: t0.Add(-24 * time.Hour)},
		"var/crash/127.0.0.1-2026-11-19-03:00:00/vmcore-dmesg.txt": {ModTime: t0.Add(-24 * time.Hour)},
		// Not dumps: kdump-tools' own files, a directory with no dump.
		"var/crash/kexec_cmd":          {},
		"var/crash/kdump_lock":         {},
		"var/crash/202611220300/notes": {},
	}
	got, err := findDumps(fsys, "/var/crash")
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
	if got, err := findDumps(fsys, "/srv/none"); err != nil || got != nil {
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
