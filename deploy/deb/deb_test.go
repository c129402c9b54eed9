package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"1.2.3":                   "1.2.3",
		"v1.2.3-rc1":              "", // a hyphen that is not git describe's
		"v1.2.3-4-gdeadbee":       "1.2.3+4.gdeadbee",
		"v1.2.3-4-gdeadbee-dirty": "1.2.3+4.gdeadbee+dirty",
		"v1.2.3-dirty":            "1.2.3+dirty",
		"0c24495":                 "0~g0c24495",
		"0c24495-dirty":           "0~g0c24495+dirty",
		"devel":                   "",
		"":                        "",
	} {
		got, err := debVersion(in)
		if want == "" {
			if err == nil {
				t.Errorf("debVersion(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("debVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Debian must order them as git does: the tag, commits after it, the
	// next tag; and any tagged version after an untagged build.
	order := []string{"0~g0c24495", "0.9.0", "1.2.3", "1.2.3+4.gdeadbee", "1.2.4"}
	for i := 1; i < len(order); i++ {
		if err := exec.Command("dpkg", "--compare-versions", order[i-1], "lt", order[i]).Run(); err != nil {
			t.Errorf("dpkg does not order %s before %s", order[i-1], order[i])
		}
	}
}

// TestPackage builds the .deb the way make deb does (the Makefile's build
// target, then this program), reads it back with dpkg-deb, unpacks it into
// a temporary root and runs its maintainer script there, and runs lintian.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ktracer and a package")
	}
	for _, tool := range []string{"dpkg-deb", "make", "deb-systemd-helper"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (Debian's dpkg, make, init-system-helpers): %v", tool, err)
		}
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ktracer")
	const describe = "v1.2.3-4-gdeadbee"
	mk := exec.Command("make", "-C", "../..", "build", "BIN="+bin, "VERSION="+describe)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out := filepath.Join(tmp, "out")
	deb, err := build(options{bin: bin, src: "../..", version: describe, arch: "amd64", out: out})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "ktracer_1.2.3+4.gdeadbee_amd64.deb"); deb != want {
		t.Errorf("package written to %s, want %s", deb, want)
	}

	// Control fields.
	info := run(t, "dpkg-deb", "--field", deb)
	for _, want := range []string{"Package: ktracer", "Version: 1.2.3+4.gdeadbee", "Architecture: amd64", "Depends: init-system-helpers"} {
		if !strings.Contains(info, want+"\n") && !strings.Contains(info, want) {
			t.Errorf("dpkg-deb --field: no %q in\n%s", want, info)
		}
	}
	if ctl := run(t, "dpkg-deb", "--info", deb); !strings.Contains(ctl, "conffiles") || !strings.Contains(ctl, "postinst") {
		t.Errorf("dpkg-deb --info: no conffiles or postinst:\n%s", ctl)
	}

	// The files, with their modes.
	listing := run(t, "dpkg-deb", "--contents", deb)
	wantFiles := map[string]string{
		"./usr/bin/ktracer":                                  "-rwxr-xr-x",
		"./lib/systemd/system/ktracer.service":               "-rw-r--r--",
		"./etc/default/ktracer":                              "-rw-r--r--",
		"./usr/share/man/man8/ktracer.8.gz":                  "-rw-r--r--",
		"./usr/share/man/man8/ktracer-daemon.8.gz":           "-rw-r--r--",
		"./usr/share/man/man8/ktracer-check.8.gz":            "-rw-r--r--",
		"./usr/share/bash-completion/completions/ktracer":    "-rw-r--r--",
		"./usr/share/zsh/vendor-completions/_ktracer":        "-rw-r--r--",
		"./usr/share/fish/vendor_completions.d/ktracer.fish": "-rw-r--r--",
		"./usr/share/doc/ktracer/copyright":                  "-rw-r--r--",
		"./usr/share/doc/ktracer/changelog.gz":               "-rw-r--r--",
	}
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		if mode, ok := wantFiles[f[5]]; ok {
			if f[0] != mode || f[1] != "root/root" {
				t.Errorf("%s: %s %s, want %s root/root", f[5], f[0], f[1], mode)
			}
			delete(wantFiles, f[5])
		}
	}
	for p := range wantFiles {
		t.Errorf("the package has no %s", p)
	}

	// Unpacked into a root of its own.
	root := filepath.Join(tmp, "root")
	run(t, "dpkg-deb", "-x", deb, root)
	run(t, "dpkg-deb", "-e", deb, filepath.Join(root, "DEBIAN"))
	if conf := readFile(t, root, "DEBIAN/conffiles"); strings.TrimSpace(conf) != "/etc/default/ktracer" {
		t.Errorf("conffiles = %q, want /etc/default/ktracer", conf)
	}

	// The installed binary carries the version and revision make gave it.
	rev := strings.TrimSpace(run(t, "git", "-C", "../..", "rev-parse", "HEAD"))
	v := run(t, filepath.Join(root, "usr/bin/ktracer"), "version")
	for _, want := range []string{"ktracer " + describe, "revision " + rev, "linux/amd64"} {
		if !strings.Contains(v, want) {
			t.Errorf("ktracer version = %q, missing %q", v, want)
		}
	}

	// The unit is the repository's, unchanged: its ordering before udev is
	// what deploy/deploy_test.go and the VM test check. It runs the
	// installed binary with the flags from the installed default file.
	unit := readFile(t, root, "lib/systemd/system/ktracer.service")
	if repo := readFile(t, "../..", "deploy/systemd/ktracer.service"); unit != repo {
		t.Error("the packaged unit differs from deploy/systemd/ktracer.service")
	}
	for _, want := range []string{"\nExecStart=/usr/bin/ktracer daemon $KTRACER_ARGS\n", "\nEnvironmentFile=-/etc/default/ktracer\n", "\nBefore=systemd-udevd.service"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit has no %q", strings.TrimSpace(want))
		}
	}

	// /etc/default/ktracer: the setting is empty by default, and every
	// example in it is made of flags ktracer daemon accepts.
	def := readFile(t, root, "etc/default/ktracer")
	if !regexp.MustCompile(`(?m)^KTRACER_ARGS=""$`).MatchString(def) {
		t.Errorf("/etc/default/ktracer does not set KTRACER_ARGS=\"\":\n%s", def)
	}
	examples := regexp.MustCompile(`(?m)^#\s+KTRACER_ARGS="([^"]+)"$`).FindAllStringSubmatch(def, -1)
	if len(examples) == 0 {
		t.Error("/etc/default/ktracer shows no example")
	}
	for _, ex := range examples {
		args := append([]string{"daemon"}, strings.Fields(ex[1])...)
		if out, err := exec.Command(filepath.Join(root, "usr/bin/ktracer"), append(args, "--help")...).CombinedOutput(); err != nil {
			t.Errorf("example %q: ktracer rejects it: %v\n%s", ex[1], err, out)
		}
	}

	// Man pages: roff from cobra, one per command, describing the flags.
	daemonMan := gunzip(t, filepath.Join(root, "usr/share/man/man8/ktracer-daemon.8.gz"))
	for _, want := range []string{".TH \"KTRACER\" \"8\"", "web.listen-address", "state-dir"} {
		if !strings.Contains(daemonMan, want) {
			t.Errorf("ktracer-daemon.8 has no %q", want)
		}
	}
	for path, want := range map[string]string{
		"usr/share/bash-completion/completions/ktracer":    "__start_ktracer",
		"usr/share/zsh/vendor-completions/_ktracer":        "#compdef ktracer",
		"usr/share/fish/vendor_completions.d/ktracer.fish": "complete -c ktracer",
	} {
		if !strings.Contains(readFile(t, root, path), want) {
			t.Errorf("%s has no %q", path, want)
		}
	}

	// The maintainer scripts: valid sh; postinst enables the unit where
	// its [Install] section says (sysinit.target, so before udev on the
	// next boot), postrm purge removes the link. They run against the
	// unpacked root (DPKG_ROOT), with systemctl and deb-systemd-invoke
	// replaced by stubs that record their calls, as if systemd were running.
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		run(t, "sh", "-n", filepath.Join(root, "DEBIAN", s))
	}
	stubs := filepath.Join(tmp, "stubs")
	calls := filepath.Join(tmp, "calls")
	os.Mkdir(stubs, 0o755)
	for _, s := range []string{"systemctl", "deb-systemd-invoke"} {
		os.WriteFile(filepath.Join(stubs, s), []byte("#!/bin/sh\necho \"$(basename $0) $*\" >> "+calls+"\n"), 0o755)
	}
	maint := func(script string, args ...string) {
		t.Helper()
		cmd := exec.Command("sh", append([]string{filepath.Join(root, "DEBIAN", script)}, args...)...)
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root, "DPKG_MAINTSCRIPT_PACKAGE=ktracer", "PATH="+stubs+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, out)
		}
	}
	maint("postinst", "configure")
	link := filepath.Join(root, "etc/systemd/system/sysinit.target.wants/ktracer.service")
	if dst, err := os.Readlink(link); err != nil || dst != "/lib/systemd/system/ktracer.service" {
		t.Errorf("postinst configure did not enable the unit: %s -> %q, %v", link, dst, err)
	}
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		if c, _ := os.ReadFile(calls); !strings.Contains(string(c), "deb-systemd-invoke start ktracer.service") {
			t.Errorf("postinst did not start the unit; calls:\n%s", c)
		}
	}
	maint("prerm", "remove")
	maint("postrm", "purge")
	if _, err := os.Lstat(link); err == nil {
		t.Error("postrm purge left the unit enabled")
	}

	// lintian, when installed (make deb-test installs it): no error or
	// warning beyond the overrides shipped in the package.
	if lintian, err := exec.LookPath("lintian"); err == nil {
		cmd := exec.Command(lintian, "--fail-on", "error,warning", deb)
		lo, err := cmd.CombinedOutput()
		lo = bytes.ReplaceAll(lo, []byte("running with root privileges is not recommended!\n"), nil)
		if err != nil || len(bytes.TrimSpace(lo)) > 0 {
			t.Errorf("lintian: %v\n%s", err, lo)
		}
	} else {
		t.Log("lintian not installed: skipped that check")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

func readFile(t *testing.T, root, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
