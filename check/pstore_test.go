package check

import (
	"bytes"
	"compress/flate"
	"os"
	"regexp"
	"testing"
	"testing/fstest"
	"time"
)

const sysrqPanic = "Kernel panic - not syncing: sysrq triggered crash"

// The real record ramoops kept across a reset of the 6.1 guest after
// `echo c > /proc/sysrq-trigger` (e2e/check_test.go captures it).
func realRamoops(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/pstore/dmesg-ramoops-0")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestPstoreRealRamoopsRecord(t *testing.T) {
	when := time.Date(2026, 11, 26, 4, 18, 10, 0, time.UTC)
	r := parsePstore("/sys/fs/pstore/dmesg-ramoops-0", "dmesg-ramoops-0", when, realRamoops(t))
	want := PstoreRecord{Path: "/sys/fs/pstore/dmesg-ramoops-0", Type: "dmesg", Backend: "ramoops", Reason: "Panic", Part: 1, Time: when, Panic: sysrqPanic}
	if r != want {
		t.Fatalf("record = %+v\nwant     %+v", r, want)
	}
}

// A record the kernel could not decompress is kept as .enc.z; the reader
// inflates it (raw deflate, as pstore compresses).
func TestPstoreCompressedRecord(t *testing.T) {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(realRamoops(t))
	w.Close()
	r := parsePstore("/sys/fs/pstore/dmesg-ramoops-3.enc.z", "dmesg-ramoops-3.enc.z", time.Time{}, buf.Bytes())
	if !r.Compressed || r.Error != "" || r.Backend != "ramoops" || r.Reason != "Panic" || r.Panic != sysrqPanic {
		t.Fatalf("record = %+v", r)
	}
	bad := parsePstore("/x/dmesg-efi-1.enc.z", "dmesg-efi-1.enc.z", time.Time{}, []byte("not deflate"))
	if bad.Error == "" || bad.Panic != "" {
		t.Fatalf("corrupt compressed record = %+v, want an error", bad)
	}
}

// An oops that panics (panic_on_oops): the cause is the BUG line, not the
// Oops line after it. The real pair of records ramoops kept when
// kt_timebomb called its freed __init helper on the 6.1 guest: first the
// oops's, then the panic's.
func TestPstoreOopsThenPanic(t *testing.T) {
	read := func(name string) PstoreRecord {
		data, err := os.ReadFile("testdata/pstore/oops-panic/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return parsePstore("/sys/fs/pstore/"+name, name, time.Time{}, data)
	}
	oops := read("dmesg-ramoops-0")
	if oops.isPanic() || oops.Reason != "Oops" || oops.Part != 1 || oops.Panic != "" {
		t.Errorf("oops record = %+v, want an Oops that is not a panic", oops)
	}
	p := read("dmesg-ramoops-1")
	if !p.isPanic() || p.Reason != "Panic" || p.Panic != "Kernel panic - not syncing: Fatal exception" ||
		!regexp.MustCompile(`^BUG: unable to handle page fault for address: ffffffff[0-9a-f]{8}$`).MatchString(p.Cause) {
		t.Errorf("panic record = %+v", p)
	}
}

func TestReadPstoreBothPlaces(t *testing.T) {
	rec := realRamoops(t)
	t0 := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	fsys := fstest.MapFS{
		"sys/fs/pstore/dmesg-ramoops-1":                            {Data: rec, ModTime: t0.Add(time.Hour)},
		"sys/fs/pstore/console-ramoops-0":                          {Data: []byte("console"), ModTime: t0},
		"var/lib/systemd/pstore/1795666690/dmesg.txt":              {Data: rec, ModTime: t0},
		"var/lib/systemd/pstore/1795666690/deep/dir/dmesg-efi-123": {Data: rec, ModTime: t0},
	}
	got, err := readPstore(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Path != "/var/lib/systemd/pstore/1795666690/dmesg.txt" || !got[0].Archived ||
		got[1].Path != "/sys/fs/pstore/dmesg-ramoops-1" || got[1].Archived || got[1].Panic != sysrqPanic {
		t.Fatalf("records = %+v", got)
	}
	if got, err := readPstore(fstest.MapFS{}); err != nil || len(got) != 0 {
		t.Fatalf("no pstore: %v %v", got, err)
	}
}
