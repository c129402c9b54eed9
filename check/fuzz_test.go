package check

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode/utf8"
)

// The seeds are the real captures in testdata: the 6.1 guest's /proc and
// /sys files and its ramoops records.

func seedFile(f *testing.F, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// Any pstore record: parsed without panic, and its fields render as valid
// text and JSON.
func FuzzPstore(f *testing.F) {
	for _, p := range []string{"testdata/pstore/dmesg-ramoops-0", "testdata/pstore/oops-panic/dmesg-ramoops-0", "testdata/pstore/oops-panic/dmesg-ramoops-1"} {
		f.Add("dmesg-ramoops-0", seedFile(f, p))
	}
	f.Add("dmesg-efi_pstore-173292838100001", []byte("Panic#1 Part1\n<0>[    1.0] Kernel panic - not syncing: \x1b[2J\xff\n"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		rec := parsePstore("/sys/fs/pstore/"+name, name, time.Unix(0, 0), data)
		r := &Report{Boot: BootFacts{Records: []PstoreRecord{rec}}}
		checkWrites(t, r)
	})
}

// checkWrites holds both check formats to well-formedness.
func checkWrites(t *testing.T, r *Report) {
	var b bytes.Buffer
	if err := Write(&b, "text", r); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b.Bytes()) {
		t.Fatalf("text output is not valid UTF-8")
	}
	for _, c := range b.String() {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			t.Fatalf("control character %q in the text output", c)
		}
	}
	b.Reset()
	if err := Write(&b, "json", r); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("invalid JSON line %q", line)
		}
	}
}

// Any /proc/iomem text: parsed or refused, never a panic; a crash region
// is never reversed.
func FuzzIomem(f *testing.F) {
	for _, p := range []string{"testdata/vm-crashkernel-64M/iomem", "testdata/root-16G/proc/iomem", "testdata/root-256G/proc/iomem"} {
		f.Add(string(seedFile(f, p)))
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, crash, _, err := parseIomem(s)
		if err != nil {
			return
		}
		for _, c := range crash {
			if c.End < c.Start {
				t.Fatalf("reversed region %+v", c)
			}
		}
	})
}

// The kexec and memory facts as a whole (iomem, meminfo, the kexec sysfs
// files, the crashkernel= command line) through the kdump check and both
// report formats.
func FuzzKexec(f *testing.F) {
	d := "testdata/vm-crashkernel-64M/"
	f.Add(seedFile(f, d+"iomem"), seedFile(f, d+"meminfo"), seedFile(f, d+"kexec_crash_size"), seedFile(f, d+"kexec_crash_loaded"), seedFile(f, d+"cmdline"))
	f.Add([]byte("00000000-00000000 : System RAM\n"), []byte("MemTotal: 99999999999999999999 kB\n"), []byte("18446744073709551615\n"), []byte("1\n"), []byte("crashkernel=512M-2G:64M,2G-:256M@16M\n"))
	f.Fuzz(func(t *testing.T, iomem, meminfo, size, loaded, cmdline []byte) {
		fsys := fstest.MapFS{
			"proc/iomem":                    {Data: iomem},
			"proc/meminfo":                  {Data: meminfo},
			"sys/kernel/kexec_crash_size":   {Data: size},
			"sys/kernel/kexec_crash_loaded": {Data: loaded},
			"proc/cmdline":                  {Data: cmdline},
		}
		k, err := readKdump(fsys)
		if err != nil {
			return
		}
		checkWrites(t, &Report{Kdump: k, Findings: kdumpFindings(k)})
	})
}
