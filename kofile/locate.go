package kofile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrNotFound is returned by Locate when modules.dep names no such module.
var ErrNotFound = errors.New("module not in modules.dep")

// maxDepLine bounds one modules.dep line (a path and its dependencies).
const maxDepLine = 1 << 20

// compressedSuffixes are the suffixes kmod accepts after .ko.
var compressedSuffixes = []string{"", ".xz", ".zst", ".gz"}

// NormalizeName makes a module name comparable: the kernel and kmod treat
// '-' and '_' in module names as the same character.
func NormalizeName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// NameFromPath returns the module name a file path implies:
// kernel/net/netfilter/xt_mark.ko.xz -> xt_mark.
func NameFromPath(p string) string {
	base := path.Base(filepath.ToSlash(p))
	for _, suf := range compressedSuffixes {
		if b, ok := strings.CutSuffix(base, ".ko"+suf); ok {
			return NormalizeName(b)
		}
	}
	return ""
}

// Locate finds the file of module name for kernel kver under root ("/" for
// the running system, or an unpacked tree), through
// root/lib/modules/KVER/modules.dep, the way modprobe does.
func Locate(root, kver, name string) (string, error) {
	if kver == "" || strings.ContainsAny(kver, "/\x00") || kver == "." || kver == ".." {
		return "", fmt.Errorf("bad kernel version %q", kver)
	}
	dir := filepath.Join(root, "lib", "modules", kver)
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := NormalizeName(name)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxDepLine)
	for sc.Scan() {
		p, _, ok := strings.Cut(sc.Text(), ":")
		if !ok || NameFromPath(p) != want {
			continue
		}
		// Old kmod wrote absolute paths; they are relative to root too.
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		} else {
			p = filepath.Join(root, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("modules.dep names %s: %w", p, err)
		}
		return p, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dir, "modules.dep"), err)
	}
	return "", fmt.Errorf("%s for %s: %w", name, kver, ErrNotFound)
}
