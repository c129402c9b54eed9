// Command deb builds ktracer's Debian package with nfpm (make deb):
//
//	go run . -bin ../../build/ktracer -version v1.2.3 -out ../../build
//
// It writes OUT/ktracer_<version>_<arch>.deb holding the static binary,
// the systemd unit (enabled by the maintainer scripts), /etc/default/ktracer,
// man pages and shell completions generated from the binary's own cobra
// command tree, and the license texts. It is its own Go module so that
// nfpm's dependencies stay out of ktracer's.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "../../build/ktracer", "the static ktracer binary to package")
	flag.StringVar(&o.src, "src", "../..", "the ktracer source tree (unit, licenses)")
	flag.StringVar(&o.version, "version", "", "ktracer's version (git describe); made into a Debian version")
	flag.StringVar(&o.arch, "arch", "amd64", "Debian architecture of the binary")
	flag.StringVar(&o.out, "out", "../../build", "directory to write the .deb into")
	flag.Parse()
	path, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

type options struct {
	bin, src, version, arch, out string
}

// Where the package puts things (Debian 12: units under /lib).
const (
	binPath     = "/usr/bin/ktracer"
	unitPath    = "/lib/systemd/system/ktracer.service"
	defaultPath = "/etc/default/ktracer"
	manDir      = "/usr/share/man/man8"
	docDir      = "/usr/share/doc/ktracer"
	bashPath    = "/usr/share/bash-completion/completions/ktracer"
	zshPath     = "/usr/share/zsh/vendor-completions/_ktracer"
	fishPath    = "/usr/share/fish/vendor_completions.d/ktracer.fish"
)

const maintainer = "ktracer authors <ktracer@users.noreply.github.com>"

func build(o options) (string, error) {
	if o.version == "" {
		return "", errors.New("-version is needed")
	}
	ver, err := debVersion(o.version)
	if err != nil {
		return "", err
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the binary: %w (make build first)", err)
	}
	here := func(name string) string { return filepath.Join("deploy", "deb", name) }
	src := func(name string) string { return filepath.Join(o.src, name) }

	gen, err := os.MkdirTemp("", "ktracer-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gen)
	contents := files.Contents{
		{Source: bin, Destination: binPath, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Source: src("deploy/systemd/ktracer.service"), Destination: unitPath, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: src(here("ktracer.default")), Destination: defaultPath, Type: files.TypeConfig, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}

	// Man pages: one per command, from the binary itself, gzipped as
	// Debian policy wants (-n: no name or time, so builds are reproducible).
	manTmp := filepath.Join(gen, "man")
	if out, err := exec.Command(bin, "man", manTmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ktracer man: %w\n%s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(manTmp, "*.8"))
	if len(pages) == 0 {
		return "", errors.New("ktracer man wrote no pages")
	}
	sort.Strings(pages)
	for _, p := range pages {
		gz := p + ".gz"
		if err := gzipFile(p, gz); err != nil {
			return "", err
		}
		contents = append(contents, &files.Content{Source: gz, Destination: manDir + "/" + filepath.Base(gz), FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}

	// Shell completions, from cobra's completion command.
	for shell, dst := range map[string]string{"bash": bashPath, "zsh": zshPath, "fish": fishPath} {
		out, err := exec.Command(bin, "completion", shell).Output()
		if err != nil || len(out) == 0 {
			return "", fmt.Errorf("ktracer completion %s: %v", shell, err)
		}
		p := filepath.Join(gen, "completion."+shell)
		if err := os.WriteFile(p, out, 0o644); err != nil {
			return "", err
		}
		contents = append(contents, &files.Content{Source: p, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}

	// Debian's copyright file, machine-readable; both license texts are
	// in /usr/share/common-licenses on every Debian system.
	copyright := filepath.Join(gen, "copyright")
	if err := os.WriteFile(copyright, []byte(copyrightText), 0o644); err != nil {
		return "", err
	}
	contents = append(contents, &files.Content{Source: copyright, Destination: docDir + "/copyright", FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	// A native package's changelog: one entry naming the commit.
	changelog := filepath.Join(gen, "changelog.gz")
	entry := fmt.Sprintf("ktracer (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n",
		ver, o.version, maintainer, mtime().Format(time.RFC1123Z))
	if err := gzipBytes([]byte(entry), changelog); err != nil {
		return "", err
	}
	contents = append(contents,
		&files.Content{Source: changelog, Destination: docDir + "/changelog.gz", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		&files.Content{Source: src(here("lintian-overrides")), Destination: "/usr/share/lintian/overrides/ktracer", FileInfo: &files.ContentFileInfo{Mode: 0o644}})

	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "ktracer",
		Arch:          o.arch,
		Platform:      "linux",
		Version:       ver,
		VersionSchema: "none", // ver is already a Debian version
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Homepage:      "https://github.com/ktracer/ktracer",
		License:       "Apache-2.0 and GPL-2.0-only",
		Description: "kernel module and initcall tracer with eBPF\n" +
			"ktracer watches module loads and initcalls with eBPF and says, in plain\n" +
			"words, when a module breaks one of the kernel's rules (an init that\n" +
			"returns a positive value, a call into freed init memory, a slow init).\n" +
			"The daemon serves Prometheus metrics and logs every event to the journal;\n" +
			"ktracer check reports kdump readiness and earlier panics.",
		MTime: mtime(),
		Overridables: nfpm.Overridables{
			Depends:  []string{"init-system-helpers (>= 1.52)"},
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: src(here("postinst")),
				PreRemove:   src(here("prerm")),
				PostRemove:  src(here("postrm")),
			},
			Deb: nfpm.Deb{Compression: "xz"},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("nfpm: %w", err)
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(o.out, fmt.Sprintf("ktracer_%s_%s.deb", ver, o.arch))
	var buf bytes.Buffer
	if err := pkg.Package(info, &buf); err != nil {
		return "", fmt.Errorf("nfpm deb: %w", err)
	}
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

var (
	tagVersion = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.+~]*)(-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	gitHash    = regexp.MustCompile(`^([0-9a-f]{7,40})(-dirty)?$`) // git describe --always, no tag yet
)

// debVersion turns git describe's output into a Debian version that sorts
// the way the commits do: v1.2.3 -> 1.2.3; v1.2.3-4-gabcdef -> 1.2.3+4.gabcdef
// (after 1.2.3); a bare hash (no tag yet) -> 0~gHASH; -dirty -> +dirty.
func debVersion(describe string) (string, error) {
	if m := gitHash.FindStringSubmatch(describe); m != nil {
		v := "0~g" + m[1]
		if m[2] != "" {
			v += "+dirty"
		}
		return v, nil
	}
	if m := tagVersion.FindStringSubmatch(describe); m != nil {
		v := m[1]
		if m[2] != "" {
			v += "+" + m[3] + ".g" + m[4]
		}
		if m[5] != "" {
			v += "+dirty"
		}
		return v, nil
	}
	return "", fmt.Errorf("version %q: not a tag (v1.2.3), git describe output or a commit hash", describe)
}

// mtime is SOURCE_DATE_EPOCH when set, so two builds of one commit are
// the same bytes; otherwise now.
func mtime() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

func gzipFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return gzipBytes(b, dst)
}

// gzipBytes writes b gzipped to dst with no name or time in the header
// (gzip -9n), as Debian policy asks for man pages and changelogs.
func gzipBytes(b []byte, dst string) error {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}

var copyrightText = strings.TrimLeft(`
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ktracer
Source: https://github.com/ktracer/ktracer

Files: *
Copyright: 2025-2026 the ktracer authors
License: Apache-2.0

Files: bpf/*
Copyright: 2025-2026 the ktracer authors
License: GPL-2.0-only
Comment: the BPF programs built into the binary.

License: Apache-2.0
 On Debian systems, the full text of the Apache License, version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.

License: GPL-2.0-only
 This program is free software; you can redistribute it and/or modify it
 under the terms of the GNU General Public License, version 2, as published
 by the Free Software Foundation.
 .
 On Debian systems, the full text of the GNU General Public License,
 version 2, is in /usr/share/common-licenses/GPL-2.
`, "\n")
